"""The fused pass of the Gaussian kernel on the CPU, compiled by numba (as gaussian.fused_numpy).

    D = max(xx_i + yy_j − 2 G_ij, 0);  e_s = exp(−D / (2σ_s²));  K_ij = Σ_s e_s;  W_ij = Σ_s scale_s e_s

numba's math.exp is a scalar libm call that does not vectorise (the PyPI build has no SVML),
so the exp is written out: exp(t) = 2^k · exp(r), with k = round(t / ln 2) and
r = t − k·ln 2 in [−ln2/2, ln2/2] (ln 2 split in a high part, exact when multiplied by k, and
a low part); exp(r) is its Taylor polynomial (degree 7 for float32, 12 for float64: error
below one ulp), and 2^k is built directly in the exponent bits of an integer viewed as a
float. Every step is branch-free, so LLVM vectorises the loop over j. Arguments below the
smallest normal number's exponent give exactly 0.

Threads: none here. The function releases the GIL (nogil), and kernels/tiled.py runs one tile
per worker thread, each with one BLAS thread: a numba parallel region right after a threaded
OpenBLAS call would fight the BLAS threads that still spin.
"""
import functools
import math

import numba
import numpy as np

# per dtype: (integer type of the same width, exponent bias, mantissa bits, lowest argument,
#             ln 2 high part, ln 2 low part, Taylor degree)
_FORMATS = {
    np.dtype(np.float32): (np.int32, 127, 23, -87.0, 0.693145751953125, 1.428606765330187e-06, 7),
    np.dtype(np.float64): (np.int64, 1023, 52, -708.0, 6.93147180369123816490e-01, 1.90821492927058770002e-10, 12),
}


@numba.njit(fastmath={"reassoc"}, nogil=True, cache=False)
def _sum64(a, lo):
    """Σ_{j ≥ lo} a_j in float64; reassociation lets LLVM split the sum over vector lanes."""
    s = 0.0
    for j in range(lo, a.size):
        s += np.float64(a[j])
    return s


@functools.cache
def _make_tile(dtype):
    """Compile the fused pass for one dtype, with that dtype's exp constants baked in."""
    itype, bias, mant, lowest, ln2_hi, ln2_lo, degree = _FORMATS[dtype]
    f = dtype.type
    LOG2E, LN2_HI, LN2_LO, LOWEST, HALF, TWO, ZERO = (f(1 / math.log(2)), f(ln2_hi), f(ln2_lo), f(lowest),
                                                      f(0.5), f(2), f(0))
    COEFFS = tuple(f(1 / math.factorial(i)) for i in range(degree, -1, -1))  # Horner order
    BIAS, MANT, NO_BITS = itype(bias), itype(mant), itype(0)

    def tile(xx, yy, G, neg_inv_2s2, scale, has_diag, off, upper, write, ksum, wsum):
        n, m = G.shape
        d = np.empty(m, dtype)
        p = np.empty(m, dtype)
        k = np.empty(m, dtype)
        w = np.empty(m, dtype)
        bits = np.empty(m, itype)
        two_k = bits.view(dtype)
        for i in range(n):
            lo = min(max(i + off + 1, 0), m) if upper else 0  # a symmetric block: its strict upper triangle
            for j in range(lo, m):
                d[j] = max(xx[i] + yy[j] - TWO * G[i, j], ZERO)
                k[j] = ZERO
                w[j] = ZERO
            if has_diag and 0 <= i + off < m:
                d[i + off] = ZERO  # ‖x_i − x_i‖² is 0, whatever the GEMM's rounding says
            for s in range(neg_inv_2s2.size):
                c = neg_inv_2s2[s]
                for j in range(lo, m):
                    arg = d[j] * c
                    t = max(arg, LOWEST)
                    kf = np.floor(t * LOG2E + HALF)
                    r = (t - kf * LN2_HI) - kf * LN2_LO
                    poly = ZERO
                    for coef in COEFFS:
                        poly = poly * r + coef
                    p[j] = poly
                    bits[j] = (itype(kf) + BIAS) << MANT if arg >= LOWEST else NO_BITS  # 0 bits = 0.0
                sc = scale[s]
                for j in range(lo, m):
                    e = p[j] * two_k[j]
                    k[j] += e
                    w[j] += e * sc
            ksum[i] = _sum64(k, lo)
            wsum[i] = _sum64(w, lo)
            if write:
                for j in range(lo, m):
                    G[i, j] = w[j]

    return numba.njit(nogil=True, cache=False)(tile)


def fused_numba(xx, yy, G, sigmas, scale=None, *, diag=None, upper=False, write=True):
    """As gaussian.fused_numpy: returns (row sums of K, row sums of W), float64; W over G when write."""
    dt = G.dtype
    neg_inv_2s2 = np.array([-0.5 / s ** 2 for s in sigmas], dt)
    scale = np.ones(len(sigmas), dt) if scale is None else np.asarray(scale, dt)
    ksum, wsum = np.empty(len(G)), np.empty(len(G))
    if not G.flags.c_contiguous:
        raise ValueError("fused_numba: expected a C-contiguous Gram block")
    _make_tile(dt)(xx, yy, G, neg_inv_2s2, scale, diag is not None, 0 if diag is None else diag, upper, write,
                   ksum, wsum)
    return ksum, wsum
