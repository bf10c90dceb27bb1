"""MMD-GAN's adversarial kernel (Li et al. 2017): D raises the MMD² of its features."""
from .base import Cure, weighted, weight
from .mmd import feature_mmd


class DiscriminatorMMD(Cure):
    """−W · MMD²(f(G(z)), f(x)) added to D's loss through the fake pass (f(x) held fixed): D
    learns features in which fake and real are far apart."""
    name = "d_mmd"
    needs_features = True
    options = (weight("d_mmd_weight", "D raises W × MMD² of its features of fake against real (MMD-GAN's "
                      "adversarial kernel, Li et al. 2017; through the fake pass, f(x) held fixed)."),)

    @classmethod
    def on(cls, values):
        return values["d_mmd_weight"] > 0

    def __init__(self, values):
        self.weight = values["d_mmd_weight"]

    def attach(self, gan):
        gan.taps.add("d_fake_features", weighted(-self.weight, feature_mmd))
