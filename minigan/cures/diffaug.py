"""DiffAugment (Zhao et al. 2020): the same random transform on every image D sees, real and
fake, in both steps, with its adjoint in backward: a layer at the front of D."""
from ..layers import DiffAugment as DiffAugmentLayer
from ..layers.augment import POLICIES
from .base import BadOption, Cure, Option


def _policy_ok(v):
    parts = [p.strip() for p in v.split(",")]
    return bool(parts) and all(p in POLICIES for p in parts)


class DiffAugment(Cure):
    """minigan.layers.DiffAugment(policy) as D's first layer (built by minigan.models); it draws
    from its own generator, saved with the run. Images only."""
    name = "diffaug"
    options = (Option("diffaug", None, "differentiable augmentation of real and fake before D (Zhao et al. "
                      "2020): 'translation', 'cutout' or both (the default with no value); images only",
                      check=_policy_ok, expect="'translation', 'cutout' or both, comma-separated",
                      metavar="POLICY", nargs="?", const="translation,cutout"),)

    @classmethod
    def on(cls, values):
        return bool(values["diffaug"])

    def __init__(self, values):
        self.policy = values["diffaug"]

    def discriminator(self):
        return {"diffaug": self.policy}

    def check(self, gan):
        if not any(isinstance(layer, DiffAugmentLayer) for layer in gan.nets["D"].leaves()):
            raise BadOption("diffaug is on but D has no DiffAugment layer: build D with it (minigan.models."
                            "dcgan_discriminator(diffaug=...))", "--diffaug: D has no DiffAugment layer")

    def check_data(self, batch_size, shape):
        if len(shape) != 3:
            raise BadOption(f"diffaug: translation and cutout need images (C, H, W); these samples have shape "
                            f"{tuple(shape)}", "--diffaug: translation and cutout need images; these samples "
                            "are points")
