"""Layers that let D look at a whole batch: minibatch standard deviation, minibatch
discrimination, and PacGAN's packing. Score real and fake batches in separate calls, or the
statistics mix them."""
import numpy as np

from .. import init
from ..backend import xp_of
from .base import Layer, check_positive


class MinibatchStdDev(Layer):
    """Karras et al. 2018: one extra feature, the mean over features of the std over a group.

    Groups of G = min(group_size, N) samples, strided: sample n is in group m = n mod (N/G).
    σ_m = sqrt(mean_g (y_g,m − ȳ_m)² + 1e-8) per feature (biased variance), s_m = mean over
    features of σ_m, appended as one channel (N, C, H, W) -> (N, C+1, H, W), or one feature
    (N, F) -> (N, F+1).
    """

    def __init__(self, group_size=4):
        super().__init__()
        check_positive("MinibatchStdDev", group_size=group_size)
        self.group_size = group_size

    def output_shape(self, in_shape):
        if len(in_shape) not in (2, 4):
            raise ValueError(f"{self}: expected (N, F) or (N, C, H, W), got {tuple(in_shape)}")
        N = in_shape[0]
        G = min(self.group_size, N)
        if N % G:
            raise ValueError(f"{self}: expected a batch that is a multiple of group_size={self.group_size} "
                             f"(or smaller than it), got N={N}")
        return (N, in_shape[1] + 1, *in_shape[2:])

    def forward(self, x, training=True):
        self.check_input(x)
        xp = xp_of(x)
        N = x.shape[0]
        G = min(self.group_size, N)
        y = x.reshape(G, N // G, *x.shape[1:])  # y[g, m] is sample g·(N/G) + m: group m
        yc = y - y.mean(axis=0)
        sigma = xp.sqrt((yc * yc).mean(axis=0) + x.dtype.type(1e-8))  # (N/G, features...)
        s = sigma.reshape(N // G, -1).mean(axis=1)  # (N/G,)
        self.cache = (yc, sigma)
        extra = xp.broadcast_to(xp.tile(s, G).reshape((N, 1) + (1,) * (x.ndim - 2)), (N, 1, *x.shape[2:]))
        return xp.concatenate([x, extra], axis=1)

    def backward(self, dy, param_grads=True):
        """ĝ_m = Σ of dy's extra channel over group m's members and positions;
        dx = dy[:, :C] + ĝ_m (y − ȳ_m) / (F·G·σ_m), F the features per sample (C·H·W)."""
        self.check_grad(dy)
        yc, sigma = self.cache
        G, M = yc.shape[:2]
        C = self.x_shape[1]
        g_hat = dy[:, C:].reshape(G, M, -1).sum(axis=(0, 2))  # (M,)
        F = int(np.prod(self.x_shape[1:]))
        shape = (M,) + (1,) * (yc.ndim - 2)
        dx = yc * ((g_hat / (F * G)).reshape(shape) / sigma)
        return dx.reshape(self.x_shape) + dy[:, :C]

    def backward_backward(self, dy, g, param_grads=True):
        """The derivative of backward's dx, given g = ∂P/∂dx, per group m and feature f
        (means over the group's G members, F features per sample):
        g_dy = [g, ds_m on the extra channel of each member of group m], ds_m = Σ_{g,f} (y − ȳ) g / (F·G·σ);
        g_x = ĝ_m / (F·G) · ((g − mean g) / σ − (y − ȳ) · mean((y − ȳ) g) / σ³)."""
        self.check_double(dy, g)
        xp = xp_of(dy)
        yc, sigma = self.cache
        G, M = yc.shape[:2]
        N, C = self.x_shape[:2]
        F = int(np.prod(self.x_shape[1:]))
        gr = g.reshape(yc.shape)
        ds = (yc * gr / sigma).reshape(G, M, -1).sum(axis=(0, 2)) / (F * G)  # (M,)
        extra = xp.broadcast_to(xp.tile(ds, G).reshape((N, 1) + (1,) * (g.ndim - 2)), (N, 1, *g.shape[2:]))
        g_dy = xp.concatenate([g, extra], axis=1)
        g_hat = dy[:, C:].reshape(G, M, -1).sum(axis=(0, 2))
        shape = (M,) + (1,) * (yc.ndim - 2)
        g_x = (gr - gr.mean(axis=0)) / sigma - yc * ((gr * yc).mean(axis=0) / sigma ** 3)
        g_x *= (g_hat / (F * G)).reshape(shape)
        return g_dy, g_x.reshape(self.x_shape)

    def __repr__(self):
        return f"MinibatchStdDev(group_size={self.group_size})"


class MinibatchDiscrimination(Layer):
    """Salimans et al. 2016.  x: (N, A) -> [x, o]: (N, A + B).

    M_i = x_i T, T: (A, B·C) viewed as (A, B, C);  c_b(i, j) = exp(−Σ_c |M_ibc − M_jbc|);
    o_b(i) = Σ_j c_b(i, j) (j = i included: it adds exactly 1, and no gradient).
    """

    def __init__(self, in_features, num_kernels=100, kernel_dim=5, *, rng=None):
        super().__init__()
        check_positive("MinibatchDiscrimination", in_features=in_features, num_kernels=num_kernels,
                       kernel_dim=kernel_dim)
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        self.params["T"] = init.dcgan_normal((in_features, num_kernels * kernel_dim), init.as_generator(rng))
        self.grads["T"] = np.zeros_like(self.params["T"])

    def output_shape(self, in_shape):
        if len(in_shape) != 2 or in_shape[1] != self.in_features:
            raise ValueError(f"{self}: expected input of shape (N, {self.in_features}), got {tuple(in_shape)}")
        return (in_shape[0], self.in_features + self.num_kernels)

    def forward(self, x, training=True):
        self.check_input(x)
        xp = xp_of(x)
        M = (x @ self.params["T"]).reshape(len(x), self.num_kernels, self.kernel_dim)
        c = xp.exp(-xp.abs(M[:, None] - M[None, :]).sum(axis=3))  # (N, N, B)
        self.cache = (x, M, c)
        return xp.concatenate([x, c.sum(axis=1)], axis=1)

    def backward(self, dy, param_grads=True):
        """g = ∂L/∂o (N, B):  ∂L/∂M_ibc = −Σ_j (g_ib + g_jb) c_b(i, j) sign(M_ibc − M_jbc);
        dT = xᵀ ∂L/∂M;  dx = dy[:, :A] + ∂L/∂M Tᵀ."""
        self.check_grad(dy)
        x, M, c = self.cache
        xp = xp_of(dy)
        A = self.in_features
        g = dy[:, A:]
        weight = (g[:, None, :] + g[None, :, :]) * c  # (N, N, B)
        dM = -(weight[..., None] * xp.sign(M[:, None] - M[None, :])).sum(axis=1)  # (N, B, C)
        dM = dM.reshape(len(x), -1)
        if param_grads:
            self.grads["T"] = x.T @ dM
        return dy[:, :A] + dM @ self.params["T"].T

    def backward_backward(self, dy, g, param_grads=True):
        """The derivative of backward's dx = dy[:, :A] + ∂L/∂M Tᵀ, given g = ∂P/∂dx (N, A).
        With δM = g T as (N, B, C), s_ijbc = sign(M_ibc − M_jbc) (constant off its kinks), g_o = dy[:, A:]:
        g_dy = [g, −Σ_j c_b(i, j) Σ_c s_ijbc (δM_ibc − δM_jbc)]   (the forward's linearisation on g);
        P = ⟨δM, ∂L/∂M⟩ reaches M through c:  with K_ijb = −(g_o,ib + g_o,jb) Σ_c δM_ibc s_ijbc,
        M̄_ibc = −Σ_j (K_ijb + K_jib) c_b(i, j) s_ijbc;
        g_x = M̄ Tᵀ;  ∂P/∂T = gᵀ ∂L/∂M + xᵀ M̄  (the explicit Tᵀ, then T inside M = x T)."""
        self.check_double(dy, g)
        x, M, c = self.cache
        xp = xp_of(dy)
        N, A = len(x), self.in_features
        T = self.params["T"]
        s = xp.sign(M[:, None] - M[None, :])  # (N, N, B, C)
        dM_g = (g @ T).reshape(M.shape)  # δM
        d_o = -(c * (s * (dM_g[:, None] - dM_g[None, :])).sum(axis=3)).sum(axis=1)  # (N, B)
        g_o = dy[:, A:]
        pair = g_o[:, None, :] + g_o[None, :, :]  # (N, N, B)
        K = -pair * (dM_g[:, None] * s).sum(axis=3)
        M_bar = -(((K + K.transpose(1, 0, 2)) * c)[..., None] * s).sum(axis=1).reshape(N, -1)
        if param_grads:
            dM = -((pair * c)[..., None] * s).sum(axis=1).reshape(N, -1)  # backward's ∂L/∂M
            self.grads["T"] = g.T @ dM + x.T @ M_bar
        return xp.concatenate([g, d_o], axis=1), M_bar @ T.T

    def __repr__(self):
        return f"MinibatchDiscrimination({self.in_features}, {self.num_kernels}, {self.kernel_dim})"


class Pack(Layer):
    """PacGAN (Lin et al. 2018): m consecutive samples side by side as one input of D.

    (N, C, H, W) -> (N/m, m·C, H, W), or (N, F) -> (N/m, m·F): a reshape, so backward is one too.
    """

    def __init__(self, m):
        super().__init__()
        check_positive("Pack", m=m)
        self.m = m

    def output_shape(self, in_shape):
        if len(in_shape) < 2 or in_shape[0] % self.m:
            raise ValueError(f"{self}: expected a batch (N, ...) with N a multiple of {self.m}, "
                             f"got {tuple(in_shape)}")
        return (in_shape[0] // self.m, in_shape[1] * self.m, *in_shape[2:])

    def forward(self, x, training=True):
        self.check_input(x)
        return x.reshape(self.y_shape).copy()

    def backward(self, dy, param_grads=True):
        """dx = dy reshaped back to (N, C, H, W)."""
        self.check_grad(dy)
        return dy.reshape(self.x_shape).copy()

    def backward_backward(self, dy, g, param_grads=True):
        """g_dy = g packed as the forward packs x;  g_x = None."""
        self.check_double(dy, g)
        return g.reshape(self.y_shape).copy(), None

    def __repr__(self):
        return f"Pack({self.m})"
