"""Gradient penalties on D's input gradient: R1 and R2 (Mescheder et al. 2018), WGAN-GP
(Gulrajani et al. 2017), DRAGAN (Kodali et al. 2017), through the second-order pass."""
import numpy as np

from .. import penalties
from .base import Cure, Option, count, weight


class GradientPenalty(Cure):
    """minigan.penalties.gradient_penalty of D at
        r1: the real batch;  r2: the fake batch;  wgan-gp: interpolates of the two;
        dragan: the real batch perturbed (the points drawn from the seed and D's step count,
        which the checkpoint keeps, so a resume draws the same ones).
    Every D step (gp_every 1): its value joins L_D and its gradient D's, in D's own Adam step.
    gp_every K > 1 is StyleGAN2's lazy regularisation: every K-th D step, after D's step, one
    more Adam step of D on the penalty alone, weighted K·W; and, because D then takes K + 1
    steps per K batches, D's Adam runs at lr·c with betas^c, c = K/(K + 1).
    R1 and R2 penalise D's gradient at the data or at G's samples (convergence near the
    equilibrium); WGAN-GP and DRAGAN pull its norm to 1 (a soft Lipschitz bound, what
    --loss wgan needs)."""
    name = "gp"
    in_d_step = True  # its count of D's steps (unrolling D puts it back)
    options = (Option("gp", None, "a penalty on D's input gradient: r1 (at real samples) or r2 (at fakes) "
                      "(Mescheder et al. 2018), wgan-gp (at interpolates, norm pulled to 1; Gulrajani et al. 2017), "
                      "dragan (at perturbed real samples; Kodali et al. 2017)",
                      check=lambda v: v in penalties.KINDS, expect=f"one of {', '.join(penalties.KINDS)}",
                      choices=list(penalties.KINDS)),
               weight("gp_weight", "with --gp: the penalty's weight (γ for R1/R2, λ for WGAN-GP/DRAGAN; 10 in "
                      "their papers).", default=10.0),
               count("gp_every", 1, 1, "with --gp: the penalty every K-th D step, in a step of its own, K times "
                     "as heavy, with D's Adam rescaled by K/(K+1) (StyleGAN2's lazy regularisation).", metavar="K"))

    @classmethod
    def on(cls, values):
        return values["gp"] is not None

    def __init__(self, values):
        self.kind, self.weight, self.every = values["gp"], values["gp_weight"], values["gp_every"]
        self.lipschitz = self.kind in ("wgan-gp", "dragan")
        self.steps, self.batch = 0, None  # D steps taken; this step's (real, fake) for a lazy penalty

    def attach(self, gan):
        self.seed = gan.seed
        if self.every > 1:
            c = self.every / (self.every + 1)
            gan.lr["D"] *= c
            gan.betas["D"] = tuple(b ** c for b in gan.betas["D"])

    def penalty(self, gan, real, fake, gain):
        """(value, grads) of the penalty at this step's points, weighted gain·W."""
        rng = np.random.default_rng([self.seed, 7, self.steps])
        x = {"r1": lambda: real, "r2": lambda: fake,
             "wgan-gp": lambda: penalties.interpolates(real, fake, rng),
             "dragan": lambda: penalties.dragan_perturb(real, rng)}[self.kind]()
        return penalties.gradient_penalty(gan.D, x, self.kind, self.weight * gain)

    def d_extra(self, gan, real, fake):
        if self.every > 1:
            self.batch = (real, fake) if self.steps % self.every == 0 else None
            return 0.0
        value, grads = self.penalty(gan, real, fake, 1)
        for name, layer, k in gan.D.named_parameters():
            layer.grads[k] += grads[name]
        return value

    def after_d(self, gan, s_real, s_fake):
        if self.batch is not None:  # the lazy penalty's own step, at D as its step left it
            _, grads = self.penalty(gan, *self.batch, self.every)
            for name, layer, k in gan.D.named_parameters():
                layer.grads[k] = grads[name]
            gan.opt["D"].step()
            self.batch = None
        self.steps += 1

    def state_dict(self):
        return {"steps": np.asarray(self.steps)}

    def load_state_dict(self, state, xp):
        self.steps = int(state["steps"]) if "steps" in state else 0
