"""Minibatch discrimination (Salimans et al. 2016): a layer before D's head."""
from .base import Cure, count


class MinibatchDiscrimination(Cure):
    """minigan.layers.MinibatchDiscrimination with KERNELS kernels of dimension 5 before D's last
    layer (built by minigan.models): each sample's closeness to the others as extra features.
    Its cost grows as N²."""
    name = "mbdisc"
    options = (count("mbdisc", None, 1, "minibatch discrimination before D's last layer (Salimans et al. "
                     "2016), KERNELS kernels of dimension 5 (100 with no value)", metavar="KERNELS", nargs="?",
                     const=100),)

    @classmethod
    def on(cls, values):
        return bool(values["mbdisc"])

    def __init__(self, values):
        self.kernels = values["mbdisc"]

    def discriminator(self):
        return {"mbdisc": self.kernels}
