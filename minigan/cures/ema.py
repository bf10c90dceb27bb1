"""EMA of the generator (Yazıcı et al. 2019): samples come from an average of G's weights."""
import numpy as np

from .. import backend, optim
from .base import BadOption, Cure, Option

CALIBRATION_SEED = [2019, 1806]  # the z the average's BatchNorm statistics are measured on


class EMA(Cure):
    """After each G step, θ_EMA ← β_t θ_EMA + (1 − β_t) θ_G with the ramped β_t of
    minigan.optim.EMA (its docstring has the equation and why the ramp); sampling and the
    metrics use the average, its BatchNorm statistics measured on it (optim.EMA.recalibrate)
    before it samples or is saved, on the same z each time, so that they are a function of the
    weights alone. Saved under "G_ema/" (the name models.load_generator reads)."""
    name = "ema"
    options = (Option("ema", None, "sample from an exponential moving average of G's weights (Yazıcı et al. "
                      "2019), decay ramped up from 0 and capped at DECAY (0.999 with no value)",
                      check=lambda v: 0 <= v < 1, expect="a decay in [0, 1)", metavar="DECAY", nargs="?",
                      type=float, const=0.999),)

    @classmethod
    def on(cls, values):
        return values["ema"] is not None

    def __init__(self, values):
        self.decay = values["ema"]

    @property
    def prefix(self):
        return "G_ema"

    def attach(self, gan):
        self.average = optim.EMA(gan.nets["G"], decay=self.decay)
        self.nz, self.xp = gan.nz, gan.xp

    def after_g(self, gan, real, fake):
        self.average.update()

    def check(self, gan):
        try:
            optim.EMA.chain(gan.nets["G"])
        except ValueError as e:
            raise BadOption(f"ema={self.decay}: {e}", f"--ema {self.decay}: {e}") from None

    def measured(self):
        """The average, its BatchNorm statistics measured on it (about 0.6 s at half width on 2 cores) unless
        they have been since the last update or load."""
        if not self.average.fresh:
            # Its own stream: training's random numbers stay as they were, and no z that the
            # project scores (seed, [seed, 4], [seed, 9]) is one the statistics were measured on.
            rng = np.random.default_rng(CALIBRATION_SEED)
            self.average.recalibrate(lambda n: backend.to_backend(
                rng.standard_normal((n, self.nz)), self.xp, np.float32))
        return self.average.model

    def sampler(self):
        return self.measured()

    def state_dict(self):
        self.measured()
        return self.average.state_dict()

    def load_state_dict(self, state, xp):
        self.average.load_state_dict(state)
