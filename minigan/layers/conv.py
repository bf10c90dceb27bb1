"""Conv2D and ConvTranspose2D over one im2col / col2im pair.

Layout of a column buffer: col[c, i, j, n, ho, wo] = x_padded[n, c, i + s*ho, j + s*wo],
shape (C, kH, kW, N, Ho, Wo). Reshaped to (C*kH*kW, N*Ho*Wo) it is one matrix, so a whole
batch's convolution is one BLAS matmul. im2col copies kH*kW strided slices (no loop over
pixels or samples); col2im is its adjoint, `+=` on the same slices. These slices are the
definition, and run in reference mode (base.reference_mode) on either backend. The fast paths
get the same values from one compiled pass: minigan.kernels.im2col_numba on NumPy (which
runs a strided slice copy as many short row loops), minigan.kernels.im2col_cupy on CuPy (one
kernel launch instead of k*k).

Batch shares and spans: on NumPy's fast path the batch is split into one share per core
(batch_shares), each run by a worker thread with one BLAS thread (minigan.kernels.threads),
and each share runs in spans of a few samples whose column buffer fits CHUNK_BYTES, so that
the matmul writes it and col2im (or the next matmul) reads it back while it is still in that
core's cache. The buffers (base.scratch, one per thread, shared by every layer) are a few MB
instead of up to 80 MB (the DCGAN's ConvTranspose2D(128, 64) at batch 64). A weight gradient is summed over the spans of a share,
then over the shares in order, so the result does not depend on which thread finished first.
On CuPy and in reference mode the batch is one share of one span: the same code, run once.

Weight layouts: Conv2D's W is (out_ch, in_ch, k, k); ConvTranspose2D's is (in_ch, out_ch, k, k)
(PyTorch's), so the W of a Conv2D is the W of its adjoint ConvTranspose2D.
"""
import functools

import numpy as np

from .. import init
from ..backend import xp_of
from ..kernels import im2col_cupy, im2col_numba, threads
from .base import Layer, check_positive, check_rank, feature_sum, in_reference_mode, on_fast_path, scratch


def conv_output_size(size, kernel_size, stride, padding):
    """Conv2D: H' = (H + 2*padding - kernel_size) // stride + 1."""
    return (size + 2 * padding - kernel_size) // stride + 1


def conv_transpose_output_size(size, kernel_size, stride, padding, output_padding):
    """ConvTranspose2D: H' = (H - 1)*stride - 2*padding + kernel_size + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel_size + output_padding


def im2col(x, kernel_size, stride, padding, out=None):
    """x: (N, C, H, W) -> col: (C, k, k, N, Ho, Wo), col[c,i,j,n,ho,wo] = x_pad[n,c,i+s*ho,j+s*wo].
    Written into `out` (C-contiguous, that shape and x's dtype) when given."""
    xp = xp_of(x)
    N, C, H, W = x.shape
    k, s, p = kernel_size, stride, padding
    Ho, Wo = conv_output_size(H, k, s, p), conv_output_size(W, k, s, p)
    shape = (C, k, k, N, Ho, Wo)
    if out is None:
        out = xp.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous or xp_of(out) is not xp:
        raise ValueError(f"im2col: expected out to be a C-contiguous {xp.__name__} array of shape {shape} "
                         f"and dtype {x.dtype}, got shape {out.shape}, dtype {out.dtype}")
    if in_reference_mode():
        return im2col_sliced(x, k, s, p, out)
    if xp is np:
        return im2col_numba.im2col(x, k, s, p, out)
    return im2col_cupy.im2col(x, k, s, p, out)


def im2col_sliced(x, k, s, p, col):
    """im2col as k*k strided slice copies into col: the definition (the path in reference mode)."""
    xp = xp_of(x)
    Ho, Wo = col.shape[4], col.shape[5]
    xt = x.transpose(1, 0, 2, 3)  # (C, N, H, W) view, so each slice lands in col's order
    if p:
        xt = xp.pad(xt, ((0, 0), (0, 0), (p, p), (p, p)))
    for i in range(k):
        for j in range(k):
            col[:, i, j] = xt[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
    return col


def col2im(col, x_shape, stride, padding, out=None):
    """The adjoint of im2col: x[n, c, i+s*ho-p, j+s*wo-p] += col[c, i, j, n, ho, wo].

    col: (C, k, k, N, Ho, Wo) -> x: x_shape = (N, C, H, W), C-contiguous; written into `out`
    (C-contiguous, that shape) when given.
    """
    xp = xp_of(col)
    if out is None:
        out = xp.empty(x_shape, dtype=col.dtype)
    elif tuple(out.shape) != tuple(x_shape) or out.dtype != col.dtype or not out.flags.c_contiguous:
        raise ValueError(f"col2im: expected out to be a C-contiguous array of shape {tuple(x_shape)} "
                         f"and dtype {col.dtype}, got shape {out.shape}, dtype {out.dtype}")
    if in_reference_mode():
        return col2im_sliced(col, x_shape, stride, padding, out)
    if xp is np:
        return im2col_numba.col2im(col, stride, padding, out)
    return im2col_cupy.col2im(col, stride, padding, out)


def col2im_sliced(col, x_shape, stride, padding, out=None):
    """col2im as `+=` on im2col's slices: the definition (the path in reference mode)."""
    xp = xp_of(col)
    C, k, _, N, Ho, Wo = col.shape
    H, W = x_shape[2], x_shape[3]
    s, p = stride, padding
    xt = xp.zeros((C, N, H + 2 * p, W + 2 * p), dtype=col.dtype)
    for i in range(k):
        for j in range(k):
            xt[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += col[:, i, j]
    x = xt[:, :, p:p + H, p:p + W].transpose(1, 0, 2, 3)
    if out is None:
        return xp.ascontiguousarray(x)
    out[...] = x
    return out


CHUNK_BYTES = 4 << 20  # the most a span's column buffer holds on NumPy's fast path (4 MiB)


def batch_shares(x, col_bytes_per_sample):
    """The batch of x split for the worker threads: one share per core (a block of samples),
    each a list of (lo, hi) spans whose column buffers hold at most CHUNK_BYTES (one sample at
    least). One share of one span, the whole batch, on CuPy (a launch per span would cost more
    than a cache saves) and in reference mode (the code on the page)."""
    N = x.shape[0]
    if not on_fast_path(x) or N == 0:
        return [[(0, N)]]
    per_span = max(1, CHUNK_BYTES // col_bytes_per_sample)
    return [[(lo, min(hi, lo + per_span)) for lo in range(first, hi, per_span)]
            for first, hi in threads.blocks(N, min(threads.workers(), N))]


def add_to(total, part):
    """total + part, summed in place; the first part (total None) is the total."""
    if total is None:
        return part
    total += part
    return total


def as_rows(a):
    """(N, C, H, W) -> (C, N*H*W): the layout of one matmul over a span of the batch (a copy,
    or a view where N is 1)."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


class _ConvBase(Layer):
    def __init__(self, name, in_ch, out_ch, kernel_size, stride, padding, bias, w_shape, fan_in, rng):
        super().__init__()
        check_positive(name, in_ch=in_ch, out_ch=out_ch, kernel_size=kernel_size, stride=stride)
        if not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"{name}: expected padding to be an int >= 0, got {padding!r}")
        self.in_ch, self.out_ch = in_ch, out_ch
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        rng = init.as_generator(rng)
        self.params["W"] = init.uniform_fan_in(w_shape, fan_in, rng)
        if bias:
            self.params["b"] = init.uniform_fan_in((out_ch,), fan_in, rng)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _check_nchw(self, in_shape):
        check_rank(self, in_shape, (4,), f"(N, {self.in_ch}, H, W)")
        if in_shape[1] != self.in_ch:
            raise ValueError(f"{self}: expected {self.in_ch} input channels (N, {self.in_ch}, H, W), "
                             f"got shape {tuple(in_shape)}")

    def _add_bias(self, y):
        if "b" in self.params:
            y += self.params["b"][:, None, None]
        return y

    def _bias_grad(self, dy):
        if "b" in self.params:
            self.grads["b"] = feature_sum(dy)


class Conv2D(_ConvBase):
    """Cross-correlation, as PyTorch's Conv2d (no dilation, no groups; square kernels).

    y[n, o, ho, wo] = b[o] + Σ_{c,i,j} W[o, c, i, j] x_pad[n, c, s*ho + i, s*wo + j]
    x: (N, in_ch, H, W) -> y: (N, out_ch, H', W'), H' = (H + 2*padding - k) // stride + 1.
    """

    def __init__(self, in_ch, out_ch, kernel_size, *, stride=1, padding=0, bias=True, rng=None):
        super().__init__("Conv2D", in_ch, out_ch, kernel_size, stride, padding, bias,
                         (out_ch, in_ch, kernel_size, kernel_size), in_ch * kernel_size ** 2, rng)

    def output_shape(self, in_shape):
        self._check_nchw(in_shape)
        N, _, H, W = in_shape
        if min(H, W) + 2 * self.padding < self.kernel_size:
            raise ValueError(f"{self}: kernel {self.kernel_size} is larger than the padded input "
                             f"{H + 2 * self.padding}x{W + 2 * self.padding} (input shape {tuple(in_shape)})")
        k, s, p = self.kernel_size, self.stride, self.padding
        return (N, self.out_ch, conv_output_size(H, k, s, p), conv_output_size(W, k, s, p))

    def forward(self, x, training=True):
        N, O, Ho, Wo = self.check_input(x)
        xp = xp_of(x)
        W2 = self.params["W"].reshape(O, -1)  # (O, C*k*k)
        y = xp.empty((N, O, Ho, Wo), x.dtype)

        def share(spans):
            for lo, hi in spans:
                col = self.columns(x[lo:hi], Ho, Wo)  # (C*k*k, n*Ho*Wo)
                y[lo:hi] = (W2 @ col).reshape(O, hi - lo, Ho, Wo).transpose(1, 0, 2, 3)
        threads.run(share, batch_shares(x, W2.shape[1] * Ho * Wo * x.itemsize))
        self.cache = x  # backward builds the columns again, a span at a time
        return self._add_bias(y)

    def columns(self, x, Ho, Wo):
        """im2col(x) as the matrix (C*k*k, N*Ho*Wo), in this thread's kept buffer (base.scratch)."""
        k, N = self.kernel_size, x.shape[0]
        col = im2col(x, k, self.stride, self.padding,
                     out=scratch("col", (self.in_ch, k, k, N, Ho, Wo), like=x))
        return col.reshape(-1, N * Ho * Wo)

    def backward(self, dy, param_grads=True):
        """With dy2 = dy as (O, N*Ho*Wo) and col = im2col(x) as (C*k*k, N*Ho*Wo):
        dW = dy2 colᵀ;  db[o] = Σ_{n,h,w} dy;  dx = col2im(Wᵀ dy2).
        Each span of the batch adds its part of dW (a sum over n), computed as (col dy2ᵀ)ᵀ."""
        self.check_grad(dy)
        x = self.cache
        xp = xp_of(dy)
        W = self.params["W"]
        O, Ho, Wo = self.y_shape[1:]
        W2 = W.reshape(O, -1)
        dx = xp.empty(x.shape, dy.dtype)

        def share(spans):  # this share's rows of dx; its part of dWᵀ, returned
            dWt = None
            for lo, hi in spans:
                dy2 = as_rows(dy[lo:hi])
                if param_grads:  # dWᵀ = col dy2ᵀ: the tall product, which BLAS runs faster
                    dWt = add_to(dWt, self.columns(x[lo:hi], Ho, Wo) @ dy2.T)
                dcol = scratch("dcol", (self.in_ch, self.kernel_size, self.kernel_size, hi - lo, Ho, Wo), like=dy)
                xp.matmul(W2.T, dy2, out=dcol.reshape(W2.shape[1], -1))
                col2im(dcol, (hi - lo,) + x.shape[1:], self.stride, self.padding, out=dx[lo:hi])
            return dWt
        parts = threads.run(share, batch_shares(x, W2.shape[1] * Ho * Wo * x.itemsize))
        if param_grads:
            self.grads["W"] = xp.ascontiguousarray(functools.reduce(add_to, parts).T).reshape(W.shape)
            self._bias_grad(dy)
        return dx

    def backward_backward(self, dy, g, param_grads=True):
        """The derivative of dx = col2im(Wᵀ dy2), given g = ∂P/∂dx (N, in_ch, H, W); with
        gcol = im2col(g) as (C*k*k, N*Ho*Wo), Dense's symmetry (the forward without its bias on g;
        the weight gradient with g in x's place):
        g_dy = W gcol, as (N, O, Ho, Wo);  ∂P/∂W = dy2 gcolᵀ;  ∂P/∂b = 0;  g_x = None."""
        self.check_double(dy, g)
        xp = xp_of(dy)
        W = self.params["W"]
        O = W.shape[0]
        N, _, Ho, Wo = self.y_shape
        gcol = im2col(g, self.kernel_size, self.stride, self.padding).reshape(-1, N * Ho * Wo)  # a new array
        g_dy = (W.reshape(O, -1) @ gcol).reshape(O, N, Ho, Wo)
        if param_grads:
            dy2 = dy.transpose(1, 0, 2, 3).reshape(O, -1)
            self.grads["W"] = (dy2 @ gcol.T).reshape(W.shape)
            if "b" in self.params:
                self.grads["b"] = xp.zeros_like(self.params["b"])
        return xp.ascontiguousarray(g_dy.transpose(1, 0, 2, 3)), None

    def __repr__(self):
        return (f"Conv2D({self.in_ch}, {self.out_ch}, {self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={'b' in self.params})")


class ConvTranspose2D(_ConvBase):
    """The adjoint of Conv2D in x (PyTorch's ConvTranspose2d): its forward is Conv2D's input gradient.

    y = col2im(Wᵀ x2) + b, with x2 = x as (in_ch, N*H*W) and W as (in_ch, out_ch*k*k).
    x: (N, in_ch, H, W) -> y: (N, out_ch, H', W'), H' = (H-1)*stride - 2*padding + k + output_padding.
    """

    def __init__(self, in_ch, out_ch, kernel_size, *, stride=1, padding=0, output_padding=0,
                 bias=True, rng=None):
        # PyTorch takes fan_in from W.shape[1] * k * k, i.e. out_ch * k * k, for this layer.
        super().__init__("ConvTranspose2D", in_ch, out_ch, kernel_size, stride, padding, bias,
                         (in_ch, out_ch, kernel_size, kernel_size), out_ch * kernel_size ** 2, rng)
        if not isinstance(output_padding, (int, np.integer)) or not 0 <= output_padding < stride:
            raise ValueError(f"ConvTranspose2D: expected 0 <= output_padding < stride = {stride}, "
                             f"got output_padding={output_padding!r}")
        self.output_padding = output_padding

    def output_shape(self, in_shape):
        self._check_nchw(in_shape)
        N, _, H, W = in_shape
        args = (self.kernel_size, self.stride, self.padding, self.output_padding)
        Ho, Wo = conv_transpose_output_size(H, *args), conv_transpose_output_size(W, *args)
        if min(Ho, Wo) < 1:
            raise ValueError(f"{self}: input shape {tuple(in_shape)} gives an empty output "
                             f"({Ho}x{Wo}); padding is too large for this input")
        return (N, self.out_ch, Ho, Wo)

    def forward(self, x, training=True):
        N, O, Ho, Wo = self.check_input(x)
        xp = xp_of(x)
        _, Cin, H, W = x.shape
        k = self.kernel_size
        W2 = self.params["W"].reshape(Cin, -1)  # (in_ch, out_ch*k*k)
        y = xp.empty((N, O, Ho, Wo), x.dtype)

        def share(spans):
            for lo, hi in spans:
                x2 = as_rows(x[lo:hi])  # (in_ch, n*H*W)
                col = scratch("col", (O, k, k, hi - lo, H, W), like=x)
                xp.matmul(W2.T, x2, out=col.reshape(-1, x2.shape[1]))
                col2im(col, (hi - lo, O, Ho, Wo), self.stride, self.padding, out=y[lo:hi])
        threads.run(share, batch_shares(x, W2.shape[1] * H * W * x.itemsize))
        self.cache = x
        return self._add_bias(y)

    def backward(self, dy, param_grads=True):
        """With x2 = x as (in_ch, N*H*W) and dcol = im2col(dy) as (out_ch*k*k, N*H*W):
        dW = x2 dcolᵀ;  db[o] = Σ_{n,h,w} dy;  dx = W dcol, back to (N, in_ch, H, W).
        Each span of the batch adds its part of dW (a sum over n), computed as (dcol x2ᵀ)ᵀ."""
        self.check_grad(dy)
        x = self.cache
        xp = xp_of(dy)
        W = self.params["W"]
        _, Cin, H, Wd = x.shape
        k = self.kernel_size
        W2 = W.reshape(Cin, -1)
        dx = xp.empty(x.shape, dy.dtype)

        def share(spans):  # this share's rows of dx; its part of dWᵀ, returned
            dWt = None
            for lo, hi in spans:
                dcol = scratch("col", (self.out_ch, k, k, hi - lo, H, Wd), like=dy)
                dcol = im2col(dy[lo:hi], k, self.stride, self.padding, out=dcol).reshape(W2.shape[1], -1)
                if param_grads:  # dWᵀ = dcol x2ᵀ: the tall product, which BLAS runs faster
                    dWt = add_to(dWt, dcol @ as_rows(x[lo:hi]).T)
                dx[lo:hi] = (W2 @ dcol).reshape(Cin, hi - lo, H, Wd).transpose(1, 0, 2, 3)
            return dWt
        parts = threads.run(share, batch_shares(x, W2.shape[1] * H * Wd * x.itemsize))
        if param_grads:
            self.grads["W"] = xp.ascontiguousarray(functools.reduce(add_to, parts).T).reshape(W.shape)
            self._bias_grad(dy)
        return dx

    def backward_backward(self, dy, g, param_grads=True):
        """The derivative of dx = W im2col(dy), given g = ∂P/∂dx (N, in_ch, H, W), g2 = g as
        (in_ch, N*H*W); Dense's symmetry again:
        g_dy = col2im(Wᵀ g2) (the forward without its bias);  ∂P/∂W = g2 dcolᵀ with
        dcol = im2col(dy) (the weight gradient with g in x's place);  ∂P/∂b = 0;  g_x = None."""
        self.check_double(dy, g)
        xp = xp_of(dy)
        W = self.params["W"]
        N, Cin, H, Wd = self.x_shape
        k = self.kernel_size
        g2 = g.transpose(1, 0, 2, 3).reshape(Cin, -1)
        gcol = (W.reshape(Cin, -1).T @ g2).reshape(self.out_ch, k, k, N, H, Wd)
        g_dy = col2im(gcol, self.y_shape, self.stride, self.padding)
        if param_grads:
            dcol = im2col(dy, k, self.stride, self.padding).reshape(-1, g2.shape[1])
            self.grads["W"] = (g2 @ dcol.T).reshape(W.shape)
            if "b" in self.params:
                self.grads["b"] = xp.zeros_like(self.params["b"])
        return g_dy, None

    def __repr__(self):
        return (f"ConvTranspose2D({self.in_ch}, {self.out_ch}, {self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}, bias={'b' in self.params})")
