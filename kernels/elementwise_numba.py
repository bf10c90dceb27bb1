"""LeakyReLU, BatchNorm (on (N, C, H, W)) and Adam's update on the CPU in one or two passes
over the data, compiled by numba. Their equations are those of minigan/layers/activations.py,
minigan/layers/batchnorm.py and minigan/optim.py, whose NumPy expressions define them, run on
CuPy and in reference mode, and are checked against these loops in tests/test_elementwise.py.

Why: NumPy runs each operator as its own pass over the activations. LeakyReLU's forward
took three (x > 0, a·x, the maximum) and its backward four; BatchNorm's forward five and its
backward seven, each reading or writing up to 13 MB (G's last BatchNorm at batch 64, full
width) that no cache holds. Here LeakyReLU is one pass each way and BatchNorm two in each
direction (statistics, then the output), on the worker threads for arrays of 8 MB and more (a
block of the batch each, minigan.kernels.threads). Per-channel sums are accumulated in float64 and added over the
blocks in order, so the result does not depend on which thread finished first. Adam's update
took thirteen NumPy passes over a parameter, its gradient and its two moments; here it is one, with the same
operations in the same order, so it rounds as NumPy does (no fastmath: no fused multiply-adds).
"""
import numba
import numpy as np

from . import threads


@numba.njit(nogil=True)
def _leaky_relu(x, a, y, positive):
    for i in range(x.size):
        v = x[i]
        positive[i] = v > 0
        y[i] = v if v > 0 else a * v


@numba.njit(nogil=True)
def _leaky_relu_grad(dy, positive, a, dx):
    for i in range(dy.size):
        dx[i] = dy[i] if positive[i] else a * dy[i]


PARALLEL_MIN_BYTES = 8 << 20  # below this one thread was faster (the pool's hand-offs cost ~0.1 ms)


def shares(n, nbytes):
    """range(n) (samples of a batch, or elements), nbytes in all, as one (lo, hi) block per
    worker thread, or as one block where the array is small."""
    return threads.blocks(n, min(threads.workers(), n) if nbytes >= PARALLEL_MIN_BYTES else 1)


def leaky_relu(x, a):
    """(y, x > 0) for y = x where x > 0, a·x elsewhere; any shape."""
    y, positive = np.empty(x.shape, x.dtype), np.empty(x.shape, np.bool_)
    x1, y1, p1, a = x.reshape(-1), y.reshape(-1), positive.reshape(-1), x.dtype.type(a)  # y1, p1: views
    threads.run(lambda s: _leaky_relu(x1[s[0]:s[1]], a, y1[s[0]:s[1]], p1[s[0]:s[1]]), shares(x.size, x.nbytes))
    return y, positive


def leaky_relu_grad(dy, positive, a):
    """dx = dy where x > 0, a·dy elsewhere."""
    dx = np.empty(dy.shape, dy.dtype)
    g1, p1, dx1, a = dy.reshape(-1), positive.reshape(-1), dx.reshape(-1), dy.dtype.type(a)
    threads.run(lambda s: _leaky_relu_grad(g1[s[0]:s[1]], p1[s[0]:s[1]], a, dx1[s[0]:s[1]]), shares(dy.size, dy.nbytes))
    return dx


@numba.njit(nogil=True, fastmath={"reassoc", "nsz"})  # sums in any order (vectorised); NaN still propagates
def _sums(x, mu, xc, out):
    """x: (N, C, L). out[c] = Σ x[n, c, :] (mu None), or Σ (x − mu[c])² with x − mu written to xc; float64."""
    N, C, L = x.shape
    for n in range(N):
        for c in range(C):
            acc = 0.0
            if mu is None:
                for i in range(L):
                    acc += x[n, c, i]
            else:
                m = mu[c]
                for i in range(L):
                    d = x[n, c, i] - m
                    xc[n, c, i] = d
                    acc += np.float64(d) * d
            out[c] += acc


@numba.njit(nogil=True)
def _affine(xc, scale, shift, y):
    """y[n, c, :] = xc[n, c, :]·scale[c] + shift[c]."""
    N, C, L = xc.shape
    for n in range(N):
        for c in range(C):
            s, t = scale[c], shift[c]
            for i in range(L):
                y[n, c, i] = xc[n, c, i] * s + t


@numba.njit(nogil=True, fastmath={"reassoc", "nsz"})
def _grad_sums(dy, xc, out):
    """out[0, c] = Σ dy[n, c, :];  out[1, c] = Σ dy[n, c, :]·xc[n, c, :]; float64."""
    N, C, L = dy.shape
    for n in range(N):
        for c in range(C):
            s0 = 0.0
            s1 = 0.0
            for i in range(L):
                g = dy[n, c, i]
                s0 += g
                s1 += np.float64(g) * xc[n, c, i]
            out[0, c] += s0
            out[1, c] += s1


@numba.njit(nogil=True)
def _grad_apply(dy, xc, scale, slope, shift, dx):
    """dx[n, c, :] = scale[c]·dy[n, c, :] + slope[c]·xc[n, c, :] + shift[c]."""
    N, C, L = dy.shape
    for n in range(N):
        for c in range(C):
            s, k, t = scale[c], slope[c], shift[c]
            for i in range(L):
                dx[n, c, i] = s * dy[n, c, i] + k * xc[n, c, i] + t


def _channel_sums(work, n, nbytes, rows):
    """Σ over the batch blocks of work(lo, hi, out) into a float64 (rows, C) array, added in block order."""
    def block(span):
        out = np.zeros(rows)
        work(span[0], span[1], out)
        return out
    parts = threads.run(block, shares(n, nbytes))
    return sum(parts[1:], parts[0])


def _rows(a):
    """(N, C, H, W) as (N, C, H*W), C-contiguous (a view where it already is)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def batchnorm_stats(x):
    """(mu, var, xc) of x (N, C, H, W) over N, H, W: two passes, mu and var in x's dtype."""
    x3 = _rows(x)
    N, C = x3.shape[:2]
    M = x.size // C
    mu = (_channel_sums(lambda lo, hi, out: _sums(x3[lo:hi], None, None, out), N, x.nbytes, C) / M).astype(x.dtype)
    xc = np.empty(x.shape, x.dtype)
    xc3 = xc.reshape(x3.shape)
    var = _channel_sums(lambda lo, hi, out: _sums(x3[lo:hi], mu, xc3[lo:hi], out), N, x.nbytes, C) / M
    return mu, var.astype(x.dtype), xc


def batchnorm_apply(xc, scale, shift):
    """y = xc·scale + shift per channel."""
    y = np.empty(xc.shape, xc.dtype)
    xc3, y3 = _rows(xc), y.reshape(xc.shape[0], xc.shape[1], -1)
    threads.run(lambda s: _affine(xc3[s[0]:s[1]], scale, shift, y3[s[0]:s[1]]), shares(len(xc), xc.nbytes))
    return y


def batchnorm_grad_sums(dy, xc):
    """(Σ dy, Σ dy·xc) per channel, in dy's dtype."""
    dy3, xc3 = _rows(dy), _rows(xc)
    out = _channel_sums(lambda lo, hi, o: _grad_sums(dy3[lo:hi], xc3[lo:hi], o), len(dy), dy.nbytes, (2, dy.shape[1]))
    return out[0].astype(dy.dtype), out[1].astype(dy.dtype)


def batchnorm_grad(dy, xc, scale, slope, shift):
    """dx = scale·dy + slope·xc + shift per channel."""
    dx = np.empty(dy.shape, dy.dtype)
    dy3, xc3, dx3 = _rows(dy), _rows(xc), dx.reshape(dy.shape[0], dy.shape[1], -1)
    threads.run(lambda s: _grad_apply(dy3[s[0]:s[1]], xc3[s[0]:s[1]], scale, slope, shift, dx3[s[0]:s[1]]),
                shares(len(dy), dy.nbytes))
    return dx


@numba.njit(nogil=True, error_model="numpy")  # x/0 gives inf as in NumPy (no check, so the loop vectorises)
def _adam(p, g, m, v, b1, c1, b2, c2, bias2, eps, step):
    """Adam's update of minigan/optim.py, element by element, in its order of operations."""
    for i in range(p.size):
        gi = g[i]
        mi = m[i] * b1 + c1 * gi
        vi = v[i] * b2 + c2 * (gi * gi)
        m[i], v[i] = mi, vi
        p[i] -= step * (mi / (np.sqrt(vi) / bias2 + eps))


def adam(p, g, m, v, b1, c1, b2, c2, bias2, eps, step):
    """minigan/optim.py:Adam._update on p, m and v in place (all C-contiguous, one dtype), with
    its scalars as it computes them: c1 = 1 − β1, c2 = 1 − β2, bias2 = sqrt(1 − β2ᵗ),
    step = lr/(1 − β1ᵗ)."""
    f = p.dtype.type  # the scalars in the arrays' dtype, as the NumPy expressions have them
    b1, c1, b2, c2, bias2, eps, step = (f(a) for a in (b1, c1, b2, c2, bias2, eps, step))
    p1, g1, m1, v1 = (a.reshape(-1) for a in (p, g, m, v))  # views
    threads.run(lambda s: _adam(p1[s[0]:s[1]], g1[s[0]:s[1]], m1[s[0]:s[1]], v1[s[0]:s[1]],
                                b1, c1, b2, c2, bias2, eps, step), shares(p.size, p.nbytes))
