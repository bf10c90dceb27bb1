"""Two time-scale updates (Heusel et al. 2017): D and G with their own learning rates, and
D's steps per G step."""
import math

from .base import Cure, Option, count


def _rate(key, who):
    return Option(key, None, f"{who}'s learning rate (TTUR, Heusel et al. 2017). Default: --lr",
                  check=lambda v: math.isfinite(v) and v > 0, expect="a finite learning rate > 0", type=float)


class TTUR(Cure):
    """lr_d and lr_g replace lr for D's and G's Adam (a resume may change them: recorded);
    d_steps D updates, on the step's batch, before each G update."""
    name = "ttur"
    options = (_rate("lr_d", "D"), _rate("lr_g", "G"),
               count("d_steps", 1, 1, "D updates per G update, on the step's batch.", metavar="N"))
    changeable = ("lr_d", "lr_g")

    @classmethod
    def on(cls, values):
        return values["lr_d"] is not None or values["lr_g"] is not None or values["d_steps"] != 1

    def __init__(self, values):
        self.lr_d, self.lr_g, self.d_steps = values["lr_d"], values["lr_g"], values["d_steps"]

    def attach(self, gan):
        gan.lr["D"] = self.lr_d or gan.lr["D"]
        gan.lr["G"] = self.lr_g or gan.lr["G"]
        gan.d_steps = self.d_steps
