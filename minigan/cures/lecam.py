"""The LeCam regulariser (Tseng et al. 2021): D's logits held near moving anchors."""
import numpy as np

from .. import losses
from .base import Cure, weighted, weight


class LeCam(Cure):
    """W · minigan.losses.LeCam (the equation is there) on D's real and fake logits, its anchors
    updated after each D step and saved with the run."""
    name = "lecam"
    in_d_step = True
    options = (weight("lecam", "LeCam regulariser of D's logits, weight W (Tseng et al. 2021)."),)

    @classmethod
    def on(cls, values):
        return values["lecam"] > 0

    def __init__(self, values):
        self.weight = values["lecam"]
        self.term = losses.LeCam()

    def attach(self, gan):
        gan.taps.add("d_real", weighted(self.weight, self.term.real))
        gan.taps.add("d_fake", weighted(self.weight, self.term.fake))

    def after_d(self, gan, s_real, s_fake):
        self.term.update(s_real, s_fake)

    def state_dict(self):
        return self.term.state_dict()

    def load_state_dict(self, state, xp):
        self.term.load_state_dict({k: xp.asarray(v, np.float32) for k, v in state.items()})
