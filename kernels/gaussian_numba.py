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

from . import tiled

# per dtype: (integer type of the same width, exponent bias, mantissa bits, lowest argument,
#             ln 2 high part, ln 2 low part, Taylor degree)
_FORMATS = {
    np.dtype(np.float32): (np.int32, 127, 23, -87.0, 0.693145751953125, 1.428606765330187e-06, 7),
    np.dtype(np.float64): (np.int64, 1023, 52, -708.0, 6.93147180369123816490e-01, 1.90821492927058770002e-10, 12),
}


GROUP = 8192  # entries per pass of the exp loops: rows are packed together up to this many


@numba.njit(fastmath={"reassoc"}, nogil=True, cache=False)
def _sum64(a):
    """Σ_j a_j in float64; reassociation lets LLVM split the sum over vector lanes."""
    s = 0.0
    for j in range(a.size):
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
        size = max(m, GROUP)
        d = np.empty(size, dtype)  # the distances of several rows, one after another
        p = np.empty(size, dtype)
        k = np.empty(size, dtype)
        w = np.empty(size, dtype)
        bits = np.empty(size, itype)
        two_k = bits.view(dtype)
        first = np.empty(n, np.int64)  # each row's first column: j > i + off in a symmetric block
        at = np.empty(n + 1, np.int64)  # where each row starts in d
        for i in range(n):
            first[i] = min(max(i + off + 1, 0), m) if upper else 0
        i0 = 0
        while i0 < n:
            i1, length = i0, 0
            while i1 < n and (i1 == i0 or length + m - first[i1] <= size):
                at[i1] = length
                # (loops run over range(size) of views: an index that might be negative gets
                # a wraparound check, and the loop no longer vectorises)
                x, g_row, y_row, d_row = xx[i1], G[i1, first[i1]:], yy[first[i1]:], d[length:length + m - first[i1]]
                for j in range(d_row.size):
                    v = x + y_row[j] - TWO * g_row[j]
                    d_row[j] = v if v > ZERO else ZERO  # not max(): its NaN rules stop vectorising
                if has_diag and not upper and 0 <= i1 + off < m:
                    d[length + i1 + off] = ZERO  # ‖x_i − x_i‖² is 0, whatever the GEMM's rounding says
                length += m - first[i1]
                i1 += 1
            at[i1] = length
            for j in range(length):
                k[j] = ZERO
                w[j] = ZERO
            for s in range(neg_inv_2s2.size):
                c = neg_inv_2s2[s]
                for j in range(length):
                    arg = d[j] * c
                    t = arg if arg > LOWEST else LOWEST
                    kf = np.floor(t * LOG2E + HALF)
                    r = (t - kf * LN2_HI) - kf * LN2_LO
                    poly = ZERO
                    for coef in COEFFS:
                        poly = poly * r + coef
                    p[j] = poly
                    bits[j] = (itype(kf) + BIAS) << MANT if arg >= LOWEST else NO_BITS  # 0 bits = 0.0
                sc = scale[s]
                for j in range(length):
                    e = p[j] * two_k[j]
                    k[j] += e
                    w[j] += e * sc
            for i in range(i0, i1):
                ksum[i] = _sum64(k[at[i]:at[i + 1]])
                w_row = w[at[i]:at[i + 1]]
                wsum[i] = _sum64(w_row)
                if write:
                    G[i, first[i]:] = w_row
            i0 = i1

    return numba.njit(nogil=True, cache=False)(tile)


@numba.njit(fastmath={"reassoc"}, nogil=True, cache=False)
def _centre(X, Y, Z, zz, c64, c, rows):
    n, d = X.shape[0], X.shape[1]
    c64[:] = 0
    for A in (X, Y):
        for i in range(min(rows, A.shape[0])):
            for k in range(d):
                c64[k] += A[i, k]
    count = min(rows, n) + min(rows, Y.shape[0])
    for k in range(d):
        c[k] = c64[k] / count
    for A, at in ((X, 0), (Y, n)):
        for i in range(A.shape[0]):
            s = A.dtype.type(0)
            for k in range(d):  # one pass: the centred row and its norm (reassoc: lanes sum apart)
                v = A[i, k] - c[k]
                Z[at + i, k] = v
                s += v * v
            zz[at + i] = s


def centre_numba(X, Y, Z):
    """As gaussian.centre, in one compiled pass (the NumPy version is several calls and passes)."""
    c, zz = np.empty(X.shape[1], X.dtype), np.empty(len(Z), X.dtype)
    _centre(X, Y, Z, zz, np.empty(X.shape[1]), c, tiled.CENTRE_ROWS)
    return c, zz


@functools.lru_cache(maxsize=64)
def _constants(sigmas, dtype, which):
    values = [-0.5 / s ** 2 for s in sigmas] if which == "neg_inv_2s2" else [1.0] * len(sigmas)
    out = np.array(values, dtype)
    out.flags.writeable = False
    return out


def fused_numba(xx, yy, G, sigmas, scale=None, *, diag=None, upper=False, write=True):
    """As gaussian.fused_numpy: returns (row sums of K, row sums of W), float64; W over G when write."""
    dt = G.dtype
    neg_inv_2s2 = _constants(tuple(sigmas), dt.char, "neg_inv_2s2")
    scale = _constants(tuple(sigmas), dt.char, "ones") if scale is None else np.asarray(scale, dt)
    ksum, wsum = np.empty(len(G)), np.empty(len(G))
    if not G.flags.c_contiguous:
        raise ValueError("fused_numba: expected a C-contiguous Gram block")
    _make_tile(dt)(xx, yy, G, neg_inv_2s2, scale, diag is not None, 0 if diag is None else diag, upper, write,
                   ksum, wsum)
    return ksum, wsum
