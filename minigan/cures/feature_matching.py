"""Feature matching (Salimans et al. 2016): G matches the batch mean of D's features."""
from .. import losses
from .base import Cure, weighted, weight


class FeatureMatching(Cure):
    """W · minigan.losses.feature_matching(f(G(z)), f(x)) added to G's loss at D's features
    (--feature-layer), f(x) taken under the D that G is trained against."""
    name = "feature_matching"
    needs_features = True
    options = (weight("feature_matching", "add W × feature matching on D's features (--feature-layer) to "
                      "G's loss (Salimans et al. 2016)."),)

    @classmethod
    def on(cls, values):
        return values["feature_matching"] > 0

    def __init__(self, values):
        self.weight = values["feature_matching"]

    def attach(self, gan):
        gan.taps.add("g_fake_features", weighted(self.weight, losses.feature_matching))
