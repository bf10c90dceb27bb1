"""Learning-rate decay: Adam's rate held for the first half of a run, then taken linearly to 0
(the schedule of CycleGAN, Zhu et al. 2017). The last steps then average out the noise a large
rate leaves in the weights, as EMA does for the sampled G."""
from .base import Cure, count


class LRDecay(Cure):
    """With N = lr_decay and t the G steps done, every network's Adam runs at

        lr_t = lr · min(1, 2 (N − t) / N)   (0 from step N on)

    set after each G step for the next one (and on resume, from the restored step count), so a
    resumed run takes the same rates as an uninterrupted one."""
    name = "lr_decay"
    options = (count("lr_decay", 0, 0, "hold Adam's rates for the first N/2 steps, then take them linearly to 0 at "
                     "step N (CycleGAN's schedule, Zhu et al. 2017); 0 is off", metavar="N"),)

    @classmethod
    def on(cls, values):
        return values["lr_decay"] > 0

    def __init__(self, values):
        self.steps = values["lr_decay"]

    def factor(self, t):
        return min(1.0, max(0.0, 2 * (self.steps - t) / self.steps))

    def attach(self, gan):
        self.gan = gan

    def after_g(self, gan, real, fake):
        self.set_rates()

    def set_rates(self):
        f = self.factor(self.gan.opt["G"].t)
        for name, opt in self.gan.opt.items():
            opt.lr = self.gan.lr[name] * f

    def load_state_dict(self, state, xp):
        self.set_rates()  # the optimizers' step counts are restored before the cures'
