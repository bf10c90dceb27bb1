"""Unrolled D (Metz et al. 2017): G's step is taken against D as it will be K steps ahead."""
from .base import Cure, count


class Unroll(Cure):
    """Before G's step, D's parameters, buffers, Adam moments and the D-step state of the cures
    (LeCam's anchors) are saved and D takes K more steps on the same batch; G's gradient is
    taken against that D, then D is put back. First-order: no gradient flows through the K
    steps (Metz et al.'s second-order term is left out)."""
    name = "unroll"
    options = (count("unroll", 0, 0, "G trains against D unrolled K steps ahead, then D is restored (Metz et "
                     "al. 2017; first-order: no gradient through the unrolled steps); 0 is off.", metavar="K"),)

    @classmethod
    def on(cls, values):
        return values["unroll"] > 0

    def __init__(self, values):
        self.k = values["unroll"]

    def before_g(self, gan, real, fake):
        self.saved = snapshot(gan)
        for _ in range(self.k):
            gan.d_update(real, fake)

    def after_g(self, gan, real, fake):
        restore(gan, self.saved)
        self.saved = None


def snapshot(gan):
    """Copies of D's parameters and buffers, of its Adam state, and of the state of the cures
    whose state changes in D's step."""
    return ({k: v.copy() for k, v in gan.nets["D"].state_dict().items()},
            {k: v.copy() for k, v in gan.opt["D"].state_dict().items()},
            {c.name: c.state_dict() for c in gan.cures if c.in_d_step})


def restore(gan, saved):
    model, optimizer, cures = saved
    gan.nets["D"].load_state_dict(model)
    gan.opt["D"].load_state_dict(optimizer)
    for c in gan.cures:
        if c.in_d_step:
            c.load_state_dict(cures[c.name], gan.xp)
