"""MAD-GAN (Ghosh et al. 2018): k generators and one D that must say which one made a sample."""
import numpy as np

from .. import losses
from ..backend import xp_of
from ..layers.containers import Heads
from .base import BadOption, Cure, count, weight, weighted


def cosine_similarity(fake, k):
    """The mean cosine similarity of samples made by different generators (sample n by generator
    n mod k), over those pairs, and its gradient w.r.t. the samples:
        c_nm = ⟨a_n, a_m⟩ / (|a_n| |a_m|);   ∂c_nm/∂a_n = a_m / (|a_n| |a_m|) − c_nm a_n / |a_n|²."""
    xp = xp_of(fake)
    a = fake.reshape(len(fake), -1)
    norm = xp.sqrt((a * a).sum(axis=1)) + a.dtype.type(1e-12)
    u = a / norm[:, None]
    C = u @ u.T
    gen = xp.arange(len(a)) % k
    W = (gen[:, None] != gen[None, :]).astype(a.dtype)
    pairs = W.sum()
    value = (C * W).sum() / pairs
    WC = W * C  # symmetric: each pair appears as (n, m) and (m, n)
    grad = (2 / pairs) * ((W @ u) - WC.sum(axis=1)[:, None] * u) / norm[:, None]
    return value, grad.reshape(fake.shape).astype(fake.dtype)


def by_generator(n, k):
    """(order, per row) to draw n samples one row per generator: sample i came from generator
    i mod k, so a stable sort on that puts each generator's samples together, n // k a row."""
    return np.argsort(np.arange(n) % k, kind="stable"), max(n // k, 1)


class MADGAN(Cure):
    """k generators sharing all layers but the last (minigan.models' builders, heads=k: Heads),
    one D with k + 1 outputs: class 0 real, class j + 1 "made by generator j". D's loss is the
    softmax cross-entropy of the true source of each sample; G's (every generator's) that its
    samples are called real. With madgan_sim W the generators are also pushed apart: W · the
    mean cosine similarity of samples from different generators, added to G's loss."""
    name = "madgan"
    adversarial = True
    options = (count("madgan", 0, 0, "MAD-GAN (Ghosh et al. 2018): K generators sharing all but their last "
                     "layer, and a D with K + 1 outputs that must name each sample's source; 0 is off.", metavar="K"),
               weight("madgan_sim", "with --madgan: add W × the mean cosine similarity between samples of "
                      "different generators to G's loss (MAD-GAN's similarity-penalised variant)."))

    @classmethod
    def on(cls, values):
        return values["madgan"] > 0

    def __init__(self, values):
        self.k, self.sim = values["madgan"], values["madgan_sim"]
        if self.k < 2:
            raise BadOption(f"madgan={self.k}: expected at least 2 generators", f"--madgan {self.k}: expected at "
                            "least 2 generators")
        clash = [k for k, on in (("pack", values["pack"] > 1), ("lecam", values["lecam"] > 0), ("gp", values["gp"]))
                 if on]
        if clash:  # packs mix generators; LeCam's anchors and the penalties expect one logit per sample
            raise BadOption(f"madgan: its D names each sample's source among {self.k + 1} classes; {clash[0]} does not "
                            "apply to it", f"--madgan: --{clash[0]} does not apply to MAD-GAN's {self.k + 1}-way D")

    def generator(self):
        return {"heads": self.k}

    def discriminator(self):
        return {"outputs": self.k + 1}

    def check(self, gan):
        heads = [layer for layer in gan.G.layers if isinstance(layer, Heads)]
        if len(heads) != 1 or heads[0].k != self.k:
            raise BadOption(f"madgan={self.k}: expected G with one Heads layer of {self.k} heads (minigan.models' "
                            f"generators take heads={self.k})")
        W = gan.D.layers[-1].params.get("W")
        if W is None or W.ndim != 2 or W.shape[1] != self.k + 1:
            raise BadOption(f"madgan={self.k}: expected D's last layer to be a Dense with {self.k + 1} outputs "
                            f"(minigan.models' discriminators take outputs={self.k + 1})")

    def attach(self, gan):
        gan.taps.add("d_real", self.d_real)
        gan.taps.add("d_fake", self.d_fake)
        gan.taps.add("g_fake", self.g)
        if self.sim:
            gan.taps.add("g_fake_pixels", weighted(self.sim, lambda fake, real: cosine_similarity(fake, self.k)))

    def _labels(self, s, real):
        xp = xp_of(s)
        if s.ndim != 2 or s.shape[1] != self.k + 1:
            raise ValueError(f"madgan: expected D's logits of shape (N, {self.k + 1}), got {tuple(s.shape)}")
        return xp.zeros(len(s), "int64") if real else xp.arange(len(s)) % self.k + 1

    def d_real(self, s):
        return losses.softmax_cross_entropy(s, self._labels(s, True))

    def d_fake(self, s):
        return losses.softmax_cross_entropy(s, self._labels(s, False))

    def g(self, s):
        return losses.softmax_cross_entropy(s, self._labels(s, True))

    def grid(self, n):
        return by_generator(n, self.k)

    def scores(self, s_real, s_fake):
        """P(real) that D gives real and fake samples, and r_t = mean sign(P(real | x) − 1/2)."""
        xp = xp_of(s_real)
        p_real = xp.exp(losses.log_softmax(s_real)[:, 0])
        p_fake = xp.exp(losses.log_softmax(s_fake)[:, 0])
        return p_real.mean(), p_fake.mean(), xp.sign(p_real - 0.5).mean()

    labels = ("P(real|x)", "P(real|G(z))")
