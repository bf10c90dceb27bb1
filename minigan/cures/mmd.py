"""MMD² between fake and real as a term of G's loss (Li et al. 2015, 2017): on pixels, or on D's
features; the Gaussian kernels are minigan.kernels'."""
import numpy as np

from .. import backend, losses
from .base import Cure, Option, weight


def feature_mmd(f_fake, f_real):
    """MMD² on D's features, bandwidths from the median heuristic on this batch's real features
    (the features move as D learns; on CuPy the median is read to the host)."""
    return losses.mmd(f_fake, f_real, None, check_finite=False)


class MMD(Cure):
    """W · MMD²(G(z), x) added to G's loss, at G's output (pixels) or at D's features. On pixels
    the bandwidths are fixed when the run starts, from 512 training samples (minigan.kernels.
    default_sigmas), and saved with the run; `last` keeps the unweighted value for the log."""
    name = "mmd"
    options = (weight("mmd_weight", "add W × MMD² (Gaussian kernels) between fake and real to G's loss (Li et al. "
                      "2015, 2017); 0 is off."),
               Option("mmd_space", "pixels", "where --mmd-weight compares: pixels, or D's features "
                      "(--feature-layer).", check=lambda v: v in ("pixels", "features"),
                      expect="'pixels' or 'features'", choices=["pixels", "features"]),
               Option("mmd_sigmas", None, "the bandwidths on pixels (default: from the data)", cli=False,
                      check=lambda v: len(v) > 0 and all(s > 0 for s in v), expect="one or more bandwidths > 0"))

    @classmethod
    def on(cls, values):
        return values["mmd_weight"] > 0

    def __init__(self, values):
        self.weight, self.space = values["mmd_weight"], values["mmd_space"]
        self.needs_features = self.space == "features"
        self.sigmas = None if values["mmd_sigmas"] is None else [float(s) for s in values["mmd_sigmas"]]
        self.last = 0.0

    def attach(self, gan):
        tap = "g_fake_features" if self.needs_features else "g_fake_pixels"
        gan.taps.add(tap, self.term)

    def prepare(self, data, seed):
        if self.space == "pixels" and self.sigmas is None:
            from ..kernels import default_sigmas
            pick = np.random.default_rng([seed, 2]).permutation(len(data))[:512]
            sample = data[pick]
            self.sigmas = list(default_sigmas(sample.reshape(len(sample), -1).astype(np.float64)))

    def term(self, fake, real):
        if self.needs_features:
            value, grad = feature_mmd(fake, real)
        else:
            value, grad = losses.mmd(fake, real, self.sigmas, check_finite=False)
        self.last = value
        return self.weight * value, np.float32(self.weight) * grad

    def state_dict(self):
        return {} if self.sigmas is None else {"sigmas": np.array(self.sigmas, np.float64)}

    def load_state_dict(self, state, xp):
        if "sigmas" in state:
            self.sigmas = [float(s) for s in backend.to_host(state["sigmas"])]
