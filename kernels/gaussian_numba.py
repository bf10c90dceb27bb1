"""The fused pass of the Gaussian kernel on the CPU, compiled by numba.

    D = max(xx_i + yy_j − 2 G_ij, 0);   K_ij = Σ_s exp(−D / (2σ_s²));   Kw_ij = Σ_s exp(…) / σ_s²

numba's math.exp is a scalar libm call that does not vectorise (the PyPI build has no SVML),
so the exp is written out: exp(t) = 2^k · exp(r), with k = round(t / ln 2) and
r = t − k·ln 2 in [−ln2/2, ln2/2] (ln 2 split in a high part, exact when multiplied by k, and
a low part); exp(r) is its Taylor polynomial (degree 7 for float32, 12 for float64: error
below one ulp), and 2^k is built directly in the exponent bits of an integer viewed as a
float. Every step is branch-free, so LLVM vectorises the loop over j. Arguments below the
smallest normal number's exponent give exactly 0.

Threads: a parallel region right after a threaded OpenBLAS matmul pays a fixed cost while
BLAS threads still spin (~8 ms measured here), which would dominate GAN-sized batches; rows
are split over threads only when the matrix is large.
"""
import functools
import math

import numba
import numpy as np

PARALLEL_MIN_ENTRIES = 1 << 22  # below this many entries of K (2048²), one thread is faster

# per dtype: (integer type of the same width, exponent bias, mantissa bits, lowest argument,
#             ln 2 high part, ln 2 low part, Taylor degree)
_FORMATS = {
    np.dtype(np.float32): (np.int32, 127, 23, -87.0, 0.693145751953125, 1.428606765330187e-06, 7),
    np.dtype(np.float64): (np.int64, 1023, 52, -708.0, 6.93147180369123816490e-01, 1.90821492927058770002e-10, 12),
}


@functools.cache
def _make_rows(dtype, parallel):
    """Compile the fused pass for one dtype, with that dtype's exp constants baked in."""
    itype, bias, mant, lowest, ln2_hi, ln2_lo, degree = _FORMATS[dtype]
    f = dtype.type
    LOG2E, LN2_HI, LN2_LO, LOWEST, HALF, TWO, ZERO = (f(1 / math.log(2)), f(ln2_hi), f(ln2_lo), f(lowest),
                                                      f(0.5), f(2), f(0))
    COEFFS = tuple(f(1 / math.factorial(i)) for i in range(degree, -1, -1))  # Horner order
    BIAS, MANT, NO_BITS = itype(bias), itype(mant), itype(0)

    def rows(xx, yy, G, neg_inv_2s2, inv_s2, weighted, K, Kw):
        n, m = G.shape
        for i in numba.prange(n):
            d = np.empty(m, dtype)
            p = np.empty(m, dtype)
            bits = np.empty(m, itype)
            scale = bits.view(dtype)
            for j in range(m):
                d[j] = max(xx[i] + yy[j] - TWO * G[i, j], ZERO)
                K[i, j] = 0
                if weighted:
                    Kw[i, j] = 0
            for s in range(neg_inv_2s2.size):
                c = neg_inv_2s2[s]
                for j in range(m):
                    arg = d[j] * c
                    t = max(arg, LOWEST)
                    kf = np.floor(t * LOG2E + HALF)
                    r = (t - kf * LN2_HI) - kf * LN2_LO
                    poly = ZERO
                    for coef in COEFFS:
                        poly = poly * r + coef
                    p[j] = poly
                    bits[j] = (itype(kf) + BIAS) << MANT if arg >= LOWEST else NO_BITS  # 0 bits = 0.0
                for j in range(m):
                    e = p[j] * scale[j]
                    K[i, j] += e
                    if weighted:
                        Kw[i, j] += e * inv_s2[s]

    return numba.njit(cache=False, parallel=parallel)(rows)


def fused_numba(xx, yy, G, sigmas, weighted):
    """As gaussian.fused_numpy: returns (K, Kw or None), in G's dtype."""
    dt = G.dtype
    neg_inv_2s2 = np.array([-0.5 / s ** 2 for s in sigmas], dt)
    inv_s2 = np.array([1 / s ** 2 for s in sigmas], dt)
    K = np.empty_like(G)
    Kw = np.empty_like(G) if weighted else K  # not written when weighted is False
    _make_rows(dt, G.size >= PARALLEL_MIN_ENTRIES)(xx, yy, np.ascontiguousarray(G), neg_inv_2s2, inv_s2, weighted, K, Kw)
    return K, (Kw if weighted else None)
