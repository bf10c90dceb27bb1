"""im2col and col2im on the GPU: one CuPy elementwise kernel each, one thread per output value.
Their equations and layout are those of im2col / col2im in minigan/layers/conv.py, whose
strided slices define them (and run in reference mode); tests/test_cuda.py holds the two equal.

Why kernels: the slices are k*k = 25 launches per call, and col2im's `+=` on a slice is a read,
an add and a copy each; at batch 64 they were about 750 of the DCGAN step's ~1,400 GPU operations.
col2im is written as a gather over the kernel taps (each x value sums the column entries that
came from it), so no two threads write one value and no atomics are needed.

The array module comes from the caller (the `xp` of the arrays): this file imports no CuPy.
"""
import functools

from minigan.backend import xp_of

_IM2COL = """
int wo = i % Wo; int t = i / Wo;
int ho = t % Ho; t /= Ho;
int n = t % N; t /= N;
int kj = t % k; t /= k;
int ki = t % k; int c = t / k;
int h = ki + s * ho - p, w = kj + s * wo - p;
col = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w] : (T)0;
"""

_COL2IM = """
int w = i % W; int t = i / W;
int h = t % H; t /= H;
int c = t % C; int n = t / C;
T acc = 0;
for (int ki = 0; ki < k; ++ki) {
    int hh = h + p - ki;
    if (hh < 0 || hh % s != 0 || hh / s >= Ho) continue;
    for (int kj = 0; kj < k; ++kj) {
        int ww = w + p - kj;
        if (ww < 0 || ww % s != 0 || ww / s >= Wo) continue;
        acc += col[((((c * k + ki) * k + kj) * N + n) * Ho + hh / s) * Wo + ww / s];
    }
}
x = acc;
"""

_SIZES = "int32 C, int32 H, int32 W, int32 N, int32 Ho, int32 Wo, int32 k, int32 s, int32 p"


@functools.cache
def _kernels(xp):
    return (xp.ElementwiseKernel(f"raw T x, {_SIZES}", "T col", _IM2COL, "minigan_im2col"),
            xp.ElementwiseKernel(f"raw T col, {_SIZES}", "T x", _COL2IM, "minigan_col2im"))


def im2col(x, kernel_size, stride, padding, col):
    """x: (N, C, H, W) CuPy -> col: (C, k, k, N, Ho, Wo), written in place and returned."""
    xp = xp_of(x)
    N, C, H, W = x.shape
    Ho, Wo = col.shape[4], col.shape[5]
    _kernels(xp)[0](xp.ascontiguousarray(x), C, H, W, N, Ho, Wo, kernel_size, stride, padding, col)
    return col


def col2im(col, stride, padding, x):
    """col: (C, k, k, N, Ho, Wo) CuPy -> x: (N, C, H, W), C-contiguous, written in place and returned."""
    xp = xp_of(col)
    C, k, _, N, Ho, Wo = col.shape
    H, W = x.shape[2], x.shape[3]
    _kernels(xp)[1](xp.ascontiguousarray(col), C, H, W, N, Ho, Wo, k, stride, padding, x)
    return x
