"""Spectral normalisation of D's weights (Miyato et al. 2018): a wrapper layer in D."""
from ..layers import SpectralNorm as SpectralNormLayer
from .base import BadOption, Cure, Option


class SpectralNorm(Cure):
    """Every Conv2D and Dense of D wrapped in minigan.layers.SpectralNorm (W / σ(W)), and D's
    BatchNorm dropped (SN-DCGAN); built by minigan.models. It bounds D's Lipschitz constant."""
    name = "sn"
    lipschitz = True
    options = (Option("sn", False, "spectral normalisation of every weight in D (Miyato et al. 2018); drops "
                      "D's BatchNorm", check=lambda v: isinstance(v, bool), expect="True or False",
                      action="store_true"),)

    @classmethod
    def on(cls, values):
        return bool(values["sn"])

    def __init__(self, values):
        pass

    def discriminator(self):
        return {"sn": True}

    def check(self, gan):
        if not any(isinstance(layer, SpectralNormLayer) for layer in gan.nets["D"].leaves()):
            raise BadOption("sn=True but D has no SpectralNorm layer: build D with it (minigan.models' "
                            "discriminators take sn=True)", "--sn: D has no SpectralNorm layer")
