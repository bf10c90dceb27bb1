import numpy as np

from ..backend import xp_of
from ..kernels import elementwise_numba
from .base import Layer, check_positive, check_rank, feature_sum, on_fast_path


def compiled(a):
    """Whether BatchNorm runs its sums and passes compiled (kernels/elementwise_numba.py): on
    NumPy's fast path, for (N, C, H, W) maps of 16 values or more (the loops go per (sample,
    channel); on 1x1 maps NumPy's reductions were 5x faster)."""
    return a.ndim == 4 and a.shape[2] * a.shape[3] >= 16 and on_fast_path(a)


class BatchNorm(Layer):
    """Batch normalisation over (N, F) or (N, C, H, W), with PyTorch's semantics.

    training: mu, var = mean and biased variance over the batch (and H, W) per feature;
              x̂ = (x - mu) / sqrt(var + eps);  y = gamma * x̂ + beta;
              running_mean += momentum * (mu - running_mean);
              running_var += momentum * (var * M/(M-1) - running_var)   (M values per feature: unbiased)
    eval:     the same with mu, var = running_mean, running_var.
    """

    def __init__(self, num_features, *, eps=1e-5, momentum=0.1):
        super().__init__()
        check_positive("BatchNorm", num_features=num_features)
        if not eps > 0:
            raise ValueError(f"BatchNorm: expected eps > 0, got {eps!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm: expected 0 <= momentum <= 1, got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.params = {"gamma": np.ones(num_features, np.float32), "beta": np.zeros(num_features, np.float32)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers = {"running_mean": np.zeros(num_features, np.float32),
                        "running_var": np.ones(num_features, np.float32)}

    def output_shape(self, in_shape):
        check_rank(self, in_shape, (2, 4), f"(N, {self.num_features}) or (N, {self.num_features}, H, W)")
        if in_shape[1] != self.num_features:
            raise ValueError(f"{self}: expected {self.num_features} features on axis 1, "
                             f"got shape {tuple(in_shape)}")
        return tuple(in_shape)

    def forward(self, x, training=True):
        self.check_input(x)
        M = x.size // self.num_features  # values per feature
        if training and M < 2:
            raise ValueError(f"{self}: training needs more than 1 value per feature, "
                             f"got input shape {tuple(x.shape)}")
        shape = (1, -1) + (1,) * (x.ndim - 2)  # broadcasts a (F,) vector over x
        xp = xp_of(x)
        fast = compiled(x)
        if training:
            if fast:
                mu, var, xc = elementwise_numba.batchnorm_stats(x)
            else:
                mu = feature_sum(x) / M
                xc = x - mu.reshape(shape)
                var = feature_sum(xc, xc) / M
            m = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            self.buffers["running_mean"] = (1 - m) * rm + m * mu
            self.buffers["running_var"] = (1 - m) * rv + m * (M / (M - 1)) * var
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]
            xc = x - mu.reshape(shape)
        inv_std = 1 / xp.sqrt(var + self.eps)
        gamma = self.params["gamma"]
        # x̂ = xc · inv_std is never stored: y and both gradients take it as xc times a
        # per-feature number, which saves a pass over the activations.
        self.cache = (xc, inv_std, gamma, training, shape)
        if fast:
            return elementwise_numba.batchnorm_apply(xc, gamma * inv_std, self.params["beta"])
        y = xc * (gamma * inv_std).reshape(shape)
        y += self.params["beta"].reshape(shape)
        return y

    def backward(self, dy, param_grads=True):
        """dbeta = Σ dy;  dgamma = Σ dy·x̂  (sums over all axes but the feature axis);
        training: dx = gamma·inv_std · (dy − (dbeta + x̂·dgamma)/M)   (mu and var depend on x);
        eval:     dx = gamma·inv_std · dy."""
        self.check_grad(dy)
        xc, inv_std, gamma, training, shape = self.cache
        fast = compiled(dy)
        if fast:
            dbeta, dy_xc = elementwise_numba.batchnorm_grad_sums(dy, xc)
        else:
            dbeta, dy_xc = feature_sum(dy), feature_sum(dy, xc)
        dgamma = dy_xc * inv_std  # Σ dy·x̂
        if param_grads:
            self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
        scale = gamma * inv_std
        if not training:
            return scale.reshape(shape) * dy
        M = dy.size // self.num_features
        # the docstring's dx as scale·dy + slope·xc + shift, each a number per feature (x̂·dgamma as xc·inv_std·dgamma)
        slope, shift = -scale * inv_std * dgamma / M, -scale * dbeta / M
        if fast:
            return elementwise_numba.batchnorm_grad(dy, xc, scale, slope, shift)
        dx = dy * scale.reshape(shape)
        dx += xc * slope.reshape(shape)
        dx += shift.reshape(shape)
        return dx

    def backward_backward(self, dy, g, param_grads=True):
        """The derivative of backward's dx, given g = ∂P/∂dx; ā is the mean over a feature's M values.
        eval:     g_dy = γ r g;  ∂P/∂γ = r Σ g·dy;  ∂P/∂β = 0;  g_x = None.
        training: dx = γ r (dy − ā(dy) − x̂ ā(dy x̂)) is linear in dy with a symmetric matrix, so
          g_dy = γ r (g − ā(g) − x̂ ā(g x̂))   (the same formula on g);
          ∂P/∂γ = r M (c − ā(g x̂) ā(dy x̂)), with c = ā(g·dy) − ā(g) ā(dy);  ∂P/∂β = 0;
          g_x = −γ r² [x̂ (c − 3 ā(g x̂) ā(dy x̂)) + (dy − ā(dy)) ā(g x̂) + (g − ā(g)) ā(dy x̂)]
        (from ∂x̂ₘ/∂xₖ = r (δₘₖ − 1/M − x̂ₘ x̂ₖ/M) and ∂r/∂xₖ = −r² x̂ₖ/M; docs/backprop.md)."""
        self.check_double(dy, g)
        xc, inv_std, gamma, training, shape = self.cache
        xp = xp_of(dy)
        if not training:
            if param_grads:
                self.grads["gamma"] = feature_sum(g, dy) * inv_std
                self.grads["beta"] = xp.zeros_like(self.params["beta"])
            return g * (gamma * inv_std).reshape(shape), None
        M = dy.size // self.num_features
        m_g, m_dy, m_g_dy = feature_sum(g) / M, feature_sum(dy) / M, feature_sum(g, dy) / M
        m_g_xh, m_dy_xh = feature_sum(g, xc) * inv_std / M, feature_sum(dy, xc) * inv_std / M  # ā(g x̂), ā(dy x̂)
        c = m_g_dy - m_g * m_dy
        if param_grads:
            self.grads["gamma"] = inv_std * M * (c - m_g_xh * m_dy_xh)
            self.grads["beta"] = xp.zeros_like(self.params["beta"])
        g_dy = (g - m_g.reshape(shape) - xc * (inv_std * m_g_xh).reshape(shape)) * (gamma * inv_std).reshape(shape)
        g_x = xc * (inv_std * (c - 3 * m_g_xh * m_dy_xh)).reshape(shape)
        g_x += (dy - m_dy.reshape(shape)) * m_g_xh.reshape(shape)
        g_x += (g - m_g.reshape(shape)) * m_dy_xh.reshape(shape)
        g_x *= (-gamma * inv_std * inv_std).reshape(shape)
        return g_dy, g_x

    def __repr__(self):
        return f"BatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum})"
