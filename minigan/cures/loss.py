"""The adversarial loss: which function of D's logits D and G minimise (--loss)."""
from .. import losses
from ..backend import xp_of
from ..layers.activations import sigmoid
from .base import Cure, Option

HELP = ("adversarial loss: ns = non-saturating (DCGAN, Goodfellow et al. 2014); hinge (SNGAN/BigGAN, Miyato "
        "et al. 2018); ls = least squares (Mao et al. 2017); wgan = Wasserstein (Arjovsky et al. 2017): its "
        "critic needs a Lipschitz bound, --sn or --gp wgan-gp.")


class Loss(Cure):
    """L_D on D's real and fake logits and L_G on the fake ones, from minigan.losses.ADVERSARIAL
    (the table of the four losses is there). It gives way to a cure that defines its own
    adversarial terms (MAD-GAN, EBGAN) when left at its default."""
    name = "loss"
    adversarial = True
    options = (Option("loss", "ns", HELP, check=lambda v: v in losses.ADVERSARIAL,
                      expect=f"one of {sorted(losses.ADVERSARIAL)}", choices=sorted(losses.ADVERSARIAL)),)

    @classmethod
    def on(cls, values):
        return True

    def __init__(self, values):
        self.loss = losses.ADVERSARIAL[values["loss"]]
        self.kind = values["loss"]

    def at_default(self):
        return self.kind == "ns"

    def check(self, gan):
        if self.kind == "wgan" and not gan.lipschitz():
            gan.notes.append("--loss wgan without --sn or --gp wgan-gp: the critic has no Lipschitz bound, "
                             "so its scores can grow without limit (Arjovsky et al. clip weights; WGAN-GP "
                             "penalises the gradient)")

    def attach(self, gan):
        gan.taps.add("d_real", self.loss.d_real)
        gan.taps.add("d_fake", self.loss.d_fake)
        gan.taps.add("g_fake", self.loss.g)

    def scores(self, s_real, s_fake):
        """What the progress line shows of D: for ns the mean probabilities D(x) and D(G(z)), for
        the others the mean raw scores (the hinge's margins are ±1, least squares' targets 1 and
        0, the critic's difference estimates the Wasserstein distance); and r_t, the mean sign of
        the real logits (near 1: D has memorised the data)."""
        xp = xp_of(s_real)
        if self.kind == "ns":
            return sigmoid(s_real).mean(), sigmoid(s_fake).mean(), xp.sign(s_real).mean()
        return s_real.mean(), s_fake.mean(), xp.sign(s_real).mean()

    @property
    def labels(self):
        return {"ns": ("D(x)", "D(G(z))"), "hinge": ("s(x)", "s(G(z))"), "ls": ("D(x)", "D(G(z))"),
                "wgan": ("critic(x)", "critic(G(z))")}[self.kind]
