"""The fused pass of the Gaussian kernel on the CPU, compiled by numba.

    D = max(xx_i + yy_j − 2 G_ij, 0);   K_ij = Σ_s exp(−D / (2σ_s²));   Kw_ij = Σ_s exp(…) / σ_s²

numba's math.exp is a scalar libm call that does not vectorise (the PyPI build has no
SVML), so float32 uses exp_f32 below: exp(t) = 2^k · exp(r), k = round(t / ln 2),
r = t − k ln 2 in [−ln2/2, ln2/2], exp(r) by its degree-7 Taylor polynomial (error
< 5e-9, under one float32 ulp) and 2^k built directly in the exponent bits. Every step
is branch-free, so LLVM vectorises the loop over j. float64 keeps math.exp (exact to
an ulp; the speed targets are for float32).

Threads: a parallel region right after a threaded OpenBLAS matmul pays a fixed cost
while BLAS threads still spin (~8 ms measured here), which would dominate GAN-sized
batches; rows are split over threads only when the matrix is large.
"""
import math

import numba
import numpy as np

PARALLEL_MIN_ENTRIES = 1 << 20  # below this many entries of K, one thread is faster

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693145751953125)  # ln 2 split in two so that k·LN2_HI is exact
_LN2_LO = np.float32(1.4286068203094173e-06)
_LOWEST = np.float32(-87.0)  # below this exp is under the smallest normal float32: 0 it is
_HALF = np.float32(0.5)
_C = [np.float32(1.0 / math.factorial(i)) for i in range(8)]
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7 = _C


def _rows_f32(xx, yy, G, neg_inv_2s2, inv_s2, weighted, K, Kw):
    n, m = G.shape
    for i in numba.prange(n):
        d = np.empty(m, np.float32)
        p = np.empty(m, np.float32)
        bits = np.empty(m, np.int32)
        scale = bits.view(np.float32)
        for j in range(m):
            d[j] = max(xx[i] + yy[j] - np.float32(2) * G[i, j], np.float32(0))
            K[i, j] = 0
            if weighted:
                Kw[i, j] = 0
        for s in range(neg_inv_2s2.size):
            c = neg_inv_2s2[s]
            for j in range(m):
                arg = d[j] * c
                t = max(arg, _LOWEST)
                kf = np.floor(t * _LOG2E + _HALF)
                r = (t - kf * _LN2_HI) - kf * _LN2_LO
                p[j] = _C0 + r * (_C1 + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * (_C6 + r * _C7))))))
                # 2^k as float32 bits; all-zero bits (the float 0.0) where exp underflows
                bits[j] = (np.int32(kf) + np.int32(127)) << np.int32(23) if arg >= _LOWEST else np.int32(0)
            for j in range(m):
                e = p[j] * scale[j]
                K[i, j] += e
                if weighted:
                    Kw[i, j] += e * inv_s2[s]


def _rows_f64(xx, yy, G, neg_inv_2s2, inv_s2, weighted, K, Kw):
    n, m = G.shape
    for i in numba.prange(n):
        for j in range(m):
            d = max(xx[i] + yy[j] - 2.0 * G[i, j], 0.0)
            k = 0.0
            kw = 0.0
            for s in range(neg_inv_2s2.size):
                e = math.exp(d * neg_inv_2s2[s])
                k += e
                kw += e * inv_s2[s]
            K[i, j] = k
            if weighted:
                Kw[i, j] = kw


_KERNELS = {
    (np.dtype(np.float32), False): numba.njit(cache=True)(_rows_f32),
    (np.dtype(np.float32), True): numba.njit(cache=True, parallel=True)(_rows_f32),
    (np.dtype(np.float64), False): numba.njit(cache=True)(_rows_f64),
    (np.dtype(np.float64), True): numba.njit(cache=True, parallel=True)(_rows_f64),
}


def fused_numba(xx, yy, G, sigmas, weighted):
    """As gaussian.fused_numpy: returns (K, Kw or None), in G's dtype."""
    dt = G.dtype
    s = np.asarray(sigmas, dtype=np.float64)
    neg_inv_2s2, inv_s2 = (-0.5 / s ** 2).astype(dt), (1 / s ** 2).astype(dt)
    K = np.empty_like(G)
    Kw = np.empty_like(G) if weighted else np.empty((1, 1), dt)
    kernel = _KERNELS[(dt, G.size >= PARALLEL_MIN_ENTRIES)]
    kernel(np.ascontiguousarray(xx), np.ascontiguousarray(yy), np.ascontiguousarray(G),
           neg_inv_2s2, inv_s2, weighted, K, Kw)
    return K, (Kw if weighted else None)
