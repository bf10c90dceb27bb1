"""Spectral normalisation (Miyato et al. 2018) as a wrapper layer, with PyTorch's semantics."""
import numpy as np

from .. import backend, init
from .base import Layer
from .conv import ConvTranspose2D


class SpectralNorm(Layer):
    """layer(x) computed with W / σ(W) in place of W; the wrapped layer's params["W"] stays the raw W.

    W_mat: W as a matrix with the output axis first (Dense: Wᵀ; Conv2D: W (out, in·k·k);
    ConvTranspose2D: its axis 1, as torch.nn.utils.spectral_norm takes it).
    training: n_power_iterations of  v ← normalise(W_matᵀ u),  u ← normalise(W_mat v)  (ε = eps),
              u and v kept in buffers; eval: the kept u and v, no iteration.
    σ = uᵀ W_mat v,  W_SN = W / σ.
    backward, u and v held constant, G = ∂L/∂W_SN:  ∂L/∂W = (G − ⟨G, W_SN⟩ u vᵀ) / σ.
    """

    def __init__(self, layer, *, n_power_iterations=1, eps=1e-12, rng=None):
        super().__init__()
        if not isinstance(layer, Layer) or "W" not in layer.params:
            raise ValueError(f"SpectralNorm: expected a layer with a weight params['W'] (Dense, Conv2D, "
                             f"ConvTranspose2D), got {layer!r}")
        if not isinstance(n_power_iterations, (int, np.integer)) or n_power_iterations < 1:
            raise ValueError(f"SpectralNorm: expected n_power_iterations >= 1, got {n_power_iterations!r}")
        if not eps > 0:
            raise ValueError(f"SpectralNorm: expected eps > 0, got {eps!r}")
        self.layer, self.n_power_iterations, self.eps = layer, n_power_iterations, eps
        self.params, self.grads = layer.params, layer.grads  # the same dicts: optimizers update the raw W
        rows, cols = self._matrix(layer.params["W"]).shape
        rng = init.as_generator(rng)
        dtype = layer.params["W"].dtype
        self.buffers = {"u": _normalise(rng.standard_normal(rows).astype(dtype), eps),
                        "v": _normalise(rng.standard_normal(cols).astype(dtype), eps)}

    def _matrix(self, W):
        """W with the output axis first, as a (out, rest) matrix (a view where the layout allows)."""
        if W.ndim == 2:  # Dense: (in, out)
            return W.T
        if isinstance(self.layer, ConvTranspose2D):  # (in, out, k, k)
            return W.transpose(1, 0, 2, 3).reshape(W.shape[1], -1)
        return W.reshape(W.shape[0], -1)  # Conv2D: (out, in, k, k)

    def _unmatrix(self, M, shape):
        """The inverse of _matrix: a (out, rest) matrix back to W's layout."""
        if len(shape) == 2:
            return M.T
        if isinstance(self.layer, ConvTranspose2D):
            return M.reshape(shape[1], shape[0], *shape[2:]).transpose(1, 0, 2, 3)
        return M.reshape(shape)

    def output_shape(self, in_shape):
        return self.layer.output_shape(in_shape)

    def forward(self, x, training=True):
        self.check_input(x)
        W = self.params["W"]
        W_mat = self._matrix(W)
        u, v = self.buffers["u"], self.buffers["v"]
        if training:
            for _ in range(self.n_power_iterations):
                v = _normalise(W_mat.T @ u, self.eps)
                u = _normalise(W_mat @ v, self.eps)
            self.buffers["u"], self.buffers["v"] = u, v
        sigma = u @ (W_mat @ v)
        W_sn = W / sigma
        self.cache = (W, W_sn, u, v, sigma)
        return self._with_weight(W_sn, self.layer.forward, x, training)

    def backward(self, dy, param_grads=True):
        """The wrapped layer's backward with W_SN; then dW from the docstring's equation."""
        self.check_grad(dy)
        W, W_sn, u, v, sigma = self.cache
        dx = self._with_weight(W_sn, self.layer.backward, dy, param_grads)
        if param_grads:
            self._to_raw_weight()
        return dx

    def backward_backward(self, dy, g, param_grads=True):
        """The wrapped layer's backward_backward with W_SN, exactly as backward runs it; then the
        adjoint of W_SN it left in grads["W"] is taken to W by backward's equation."""
        self.check_double(dy, g)
        W_sn = self.cache[1]
        g_dy, g_x = self._with_weight(W_sn, self.layer.backward_backward, dy, g, param_grads)
        if param_grads:
            self._to_raw_weight()
        return g_dy, g_x

    def _to_raw_weight(self):
        """grads["W"] holds G = ∂/∂W_SN (from the wrapped layer): replace it by (G − ⟨G, W_SN⟩ u vᵀ) / σ."""
        W, W_sn, u, v, sigma = self.cache
        G = self.grads["W"]
        inner = (G * W_sn).sum()
        dW_mat = (self._matrix(G) - inner * (u[:, None] * v[None, :])) / sigma
        self.grads["W"] = backend.xp_of(dW_mat).ascontiguousarray(self._unmatrix(dW_mat, W.shape))

    def settle(self, max_iterations=20000, tol=1e-14):
        """Run the power iteration on the kept u, v until u moves less than `tol` in 50 steps (or
        `max_iterations` pass): u, v approach the top singular vectors as (σ₂/σ₁)² per step, slowly
        where the two top singular values are close (random weights). gradcheck settles its float64
        copy before probing a training forward, each probe of which iterates once more: then every
        probe sees the true σ(W), whose derivative backward's equation is. (It reads u's progress to
        the host: a tool for checks, not for a training step.)"""
        W_mat = self._matrix(self.params["W"])
        u, v = self.buffers["u"], self.buffers["v"]
        before = u
        for i in range(1, max_iterations + 1):
            v = _normalise(W_mat.T @ u, self.eps)
            u = _normalise(W_mat @ v, self.eps)
            if i % 50 == 0:
                if float(backend.xp_of(u).abs(u - before).max()) < tol:
                    break
                before = u
        self.buffers["u"], self.buffers["v"] = u, v

    def _with_weight(self, W_sn, method, *args):
        """Run the wrapped layer's forward or backward with W_SN as its weight, then put the raw W back."""
        raw = self.params["W"]
        self.params["W"] = W_sn
        try:
            return method(*args)
        finally:
            self.params["W"] = raw

    def to(self, xp=None, dtype=None):
        self.layer.to(xp, dtype)
        xp = xp or backend.xp_of(self.params["W"])
        self.buffers = {k: backend.to_backend(v, xp, dtype) for k, v in self.buffers.items()}
        self.cache = None
        return self

    def __repr__(self):
        return f"SpectralNorm({self.layer!r})"


def _normalise(a, eps):
    """a / max(‖a‖, eps), as torch.nn.functional.normalize."""
    norm = backend.xp_of(a).sqrt((a * a).sum())
    return a / backend.xp_of(a).maximum(norm, a.dtype.type(eps))
