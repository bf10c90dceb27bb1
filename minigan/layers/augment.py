"""Differentiable augmentation (Zhao et al. 2020), applied to real and fake images before D."""
import numpy as np

from .. import backend, init
from .base import Layer

POLICIES = ("translation", "cutout")


class DiffAugment(Layer):
    """The same kind of random transform on every image D sees, with a backward through it.

    One draw per sample, from this layer's own generator (the draw depends on the seed and
    the shape only, never on x):
      translation: y[n, :, h, w] = x[n, :, h − ty, w − tx], fill where that leaves the image;
                   ty, tx integers uniform in [−⌊H·r⌋, ⌊H·r⌋], [−⌊W·r⌋, ⌊W·r⌋], r = translation_ratio
      cutout:      a ⌊H·q⌋ × ⌊W·q⌋ box (q = cutout_ratio) at a uniform centre, clipped at the
                   borders, set to fill
    fill = −1 is the background of images in [−1, 1] (the reference fills with 0: mid-grey).
    training=False is the identity. Backward is the adjoint of the cached draw: dy·mask for
    cutout, then dy shifted by (−ty, −tx) with 0 where the output pixel was fill.
    """

    def __init__(self, policy="translation,cutout", *, translation_ratio=1 / 8, cutout_ratio=1 / 2,
                 fill=-1.0, rng=None):
        super().__init__()
        self.policy = tuple(p.strip() for p in policy.split(",") if p.strip())
        bad = [p for p in self.policy if p not in POLICIES]
        if bad or not self.policy:
            raise ValueError(f"DiffAugment: expected a policy of {', '.join(POLICIES)} (comma-separated), "
                             f"got {policy!r}")
        for name, r in (("translation_ratio", translation_ratio), ("cutout_ratio", cutout_ratio)):
            if not 0 <= r <= 1:
                raise ValueError(f"DiffAugment: expected 0 <= {name} <= 1, got {r!r}")
        self.translation_ratio, self.cutout_ratio, self.fill = translation_ratio, cutout_ratio, float(fill)
        self.rng = init.as_generator(rng)

    def output_shape(self, in_shape):
        if len(in_shape) != 4:
            raise ValueError(f"{self}: expected images (N, C, H, W), got {tuple(in_shape)}")
        return tuple(in_shape)

    def _max_shift(self, shape):
        return max(int(shape[2] * self.translation_ratio), int(shape[3] * self.translation_ratio))

    def _sample(self, rng, shape):
        """The draw for a batch of this shape, as host integer arrays (N,)."""
        N, _, H, W = shape
        d = {}
        if "translation" in self.policy:
            sy, sx = int(H * self.translation_ratio), int(W * self.translation_ratio)
            d["ty"], d["tx"] = rng.integers(-sy, sy + 1, N), rng.integers(-sx, sx + 1, N)
        if "cutout" in self.policy:
            d["cy"], d["cx"] = rng.integers(0, H, N), rng.integers(0, W, N)
        return d

    def forward(self, x, training=True):
        self.check_input(x)
        if not training:
            self.cache = None
            return x.copy()
        xp = backend.xp_of(x)
        d = self.draw(lambda rng: self._sample(rng, x.shape))
        y, mask = x, None
        if "translation" in self.policy:
            y = shift(y, backend.to_backend(d["ty"], xp), backend.to_backend(d["tx"], xp), self.fill,
                      self._max_shift(x.shape))
        if "cutout" in self.policy:
            mask = backend.to_backend(self._cutout_mask(d, x.shape), xp, x.dtype)
            y = y * mask + x.dtype.type(self.fill) * (1 - mask)
        self.cache = (d, mask)
        return y if y is not x else x.copy()

    def _cutout_mask(self, d, shape):
        """(N, 1, H, W): 0 inside each sample's box, 1 elsewhere (host)."""
        N, _, H, W = shape
        bh, bw = int(H * self.cutout_ratio), int(W * self.cutout_ratio)
        top, left = d["cy"] - bh // 2, d["cx"] - bw // 2
        rows, cols = np.arange(H), np.arange(W)
        inside_r = (rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + bh)
        inside_c = (cols[None, :] >= left[:, None]) & (cols[None, :] < left[:, None] + bw)
        return ~(inside_r[:, :, None] & inside_c[:, None, :])[:, None]

    def backward(self, dy, param_grads=True):
        """The adjoint of the forward's draw (see the class docstring)."""
        self.check_grad(dy)
        if self.cache is None:
            return dy.copy()
        d, mask = self.cache
        xp = backend.xp_of(dy)
        dx = dy * mask if mask is not None else dy
        if "translation" in self.policy:
            dx = shift(dx, backend.to_backend(-d["ty"], xp), backend.to_backend(-d["tx"], xp), 0.0,
                       self._max_shift(dy.shape))
        return dx if dx is not dy else dy.copy()

    def backward_backward(self, dy, g, param_grads=True):
        """With the draw held the forward is y = L x + (fill where L leaves a hole), L linear, and
        backward is Lᵀ dy: g_dy = L g, the forward's draw applied to g with fill 0;  g_x = None."""
        self.check_double(dy, g)
        if self.cache is None:
            return g.copy(), None
        d, mask = self.cache
        xp = backend.xp_of(g)
        out = g
        if "translation" in self.policy:
            out = shift(out, backend.to_backend(d["ty"], xp), backend.to_backend(d["tx"], xp), 0.0,
                        self._max_shift(g.shape))
        if mask is not None:
            out = out * mask
        return (out if out is not g else g.copy()), None

    def __repr__(self):
        return (f"DiffAugment({','.join(self.policy)!r}, translation_ratio={self.translation_ratio:g}, "
                f"cutout_ratio={self.cutout_ratio:g}, fill={self.fill:g})")


def shift(a, ty, tx, fill, P):
    """out[n, :, h, w] = a[n, :, h − ty[n], w − tx[n]], or fill where that index leaves the image
    (|ty|, |tx| <= P): one gather from a copy of `a` padded with P pixels of fill."""
    xp = backend.xp_of(a)
    N, C, H, W = a.shape
    padded = xp.full((N, H + 2 * P, W + 2 * P, C), fill, dtype=a.dtype)
    padded[:, P:P + H, P:P + W] = a.transpose(0, 2, 3, 1)
    rows = xp.arange(H)[None, :] - ty[:, None] + P  # (N, H)
    cols = xp.arange(W)[None, :] - tx[:, None] + P  # (N, W)
    out = padded[xp.arange(N)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return xp.ascontiguousarray(out.transpose(0, 3, 1, 2))
