"""Two approximations of MMD² with the same sum of Gaussians k = Σ_s k_s, and their gradients dX.

Random Fourier features (Rahimi & Recht 2007). k_s(x, y) = E_ω cos(ωᵀ(x − y)) with ω ~ N(0, I/σ_s²),
so with F frequencies ω_sf per bandwidth (one matrix Ω (d, F·S), drawn from `seed`):

    φ(x) = F^(−1/2) [cos(xᵀΩ), sin(xᵀΩ)]  (2FS,);   k(x, y) ≈ φ(x)·φ(y);   ‖φ(x)‖² = S exactly
    biased:   MMD² ≈ ‖μ_X − μ_Y‖²,  μ_X = mean_i φ(x_i)
    unbiased: (n²‖μ_X‖² − nS)/(n(n−1)) + (m²‖μ_Y‖² − mS)/(m(m−1)) − 2 μ_X·μ_Y
    dX_i = J_φ(x_i)ᵀ g,  J_φ(x)ᵀ g = F^(−1/2) Ω (−sin(Ωᵀx) ⊙ g_cos + cos(Ωᵀx) ⊙ g_sin),
    g = 2(μ_X − μ_Y)/n (biased) or 2μ_X/(n − 1) − 2μ_Y/n (unbiased).
Cost O((n + m)·d·F·S), rows in chunks (memory O(chunk·F·S)). Rows are centred first: the
features of x − c and y − c give the same products, and float32 phases stay small.

The linear-time statistic (Gretton et al. 2012, Lemma 14), unbiased, over P = ⌊min(n, m)/2⌋
pairs of consecutive rows (x_a, x_b) = (x_2p, x_2p+1), and likewise (y_a, y_b):

    MMD²_l = (1/P) Σ_p h_p,   h = k(x_a, x_b) + k(y_a, y_b) − k(x_a, y_b) − k(x_b, y_a)
    ∂h/∂x_a = −W(x_a, x_b)(x_a − x_b) + W(x_a, y_b)(x_a − y_b)
    ∂h/∂x_b =  W(x_a, x_b)(x_a − x_b) + W(x_b, y_a)(x_b − y_a),   W = Σ_s k_s/σ_s²
Cost O(P·d·S): no matrix at all; its variance is larger than the quadratic-time statistic's.
"""
import functools

import numpy as np

from minigan import backend as _backend

CHUNK_BYTES = 32 << 20


def check_finite(X, Y, name):
    xp = _backend.xp_of(X, Y)
    if not (bool(xp.isfinite(X).all()) and bool(xp.isfinite(Y).all())):
        raise ValueError(f"{name}: X and Y must be finite; found NaN or Inf")


@functools.lru_cache(maxsize=8)
def _frequencies_host(seed, d, features, sigmas, dtype):
    """Ω (d, F·S): column block s holds N(0, I/σ_s²) draws, from default_rng(seed)."""
    Z = np.random.default_rng(seed).standard_normal((d, features * len(sigmas)))
    return (Z / np.repeat(np.asarray(sigmas), features)[None, :]).astype(dtype)


def frequencies(xp, seed, d, features, sigmas, dtype):
    return _backend.to_backend(_frequencies_host(seed, d, features, tuple(sigmas), np.dtype(dtype).str), xp)


def _chunks(n, width, itemsize):
    rows = max(1, CHUNK_BYTES // (2 * width * itemsize))
    return [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]


def mmd2_rff(X, Y, sigmas, *, unbiased=False, features=1024, seed=0):
    """(value as a 0-d float64 array, dX), the random-features estimate above."""
    if not (isinstance(features, (int, np.integer)) and features >= 1):
        raise ValueError(f"mmd2: expected features, the frequencies per bandwidth, an integer >= 1, got {features!r}")
    xp = _backend.xp_of(X, Y)
    n, m, S, F = len(X), len(Y), len(sigmas), int(features)
    Om = frequencies(xp, seed, X.shape[1], F, sigmas, X.dtype)
    c = ((X.sum(axis=0, dtype=np.float64) + Y.sum(axis=0, dtype=np.float64)) / (n + m)).astype(X.dtype)
    norm = X.dtype.type(F ** -0.5)

    def mean_features(A):
        total = xp.zeros(2 * F * S, np.float64)
        for lo, hi in _chunks(len(A), F * S, A.dtype.itemsize):
            P = (A[lo:hi] - c) @ Om
            total[:F * S] += xp.cos(P).sum(axis=0, dtype=np.float64)
            total[F * S:] += xp.sin(P).sum(axis=0, dtype=np.float64)
        return total * (F ** -0.5) / len(A)

    mx, my = mean_features(X), mean_features(Y)
    if unbiased:
        value = ((n * n * (mx @ mx) - n * S) / (n * (n - 1)) + (m * m * (my @ my) - m * S) / (m * (m - 1))
                 - 2 * (mx @ my))
        g = 2 * mx / (n - 1) - 2 * my / n
    else:
        diff = mx - my
        value = diff @ diff
        g = 2 * diff / n
    g = g.astype(X.dtype)
    g_cos, g_sin = g[:F * S], g[F * S:]
    dX = xp.empty_like(X)
    for lo, hi in _chunks(n, F * S, X.dtype.itemsize):
        P = (X[lo:hi] - c) @ Om
        dX[lo:hi] = (xp.cos(P) * g_sin - xp.sin(P) * g_cos) @ Om.T * norm
    return xp.asarray(value, dtype=np.float64), dX


def mmd2_linear(X, Y, sigmas):
    """(value as a 0-d float64 array, dX), the linear-time statistic above."""
    xp = _backend.xp_of(X, Y)
    P = min(len(X), len(Y)) // 2
    xa, xb, ya, yb = X[0:2 * P:2], X[1:2 * P:2], Y[0:2 * P:2], Y[1:2 * P:2]

    def k_and_w(u, v):
        diff = u - v
        D = (diff * diff).sum(axis=1)
        K, W = xp.zeros_like(D), xp.zeros_like(D)
        for s in sigmas:
            E = xp.exp(D * X.dtype.type(-0.5 / s ** 2))
            K += E
            W += E * X.dtype.type(1 / s ** 2)
        return K, W[:, None] * diff  # W(u, v)(u − v)

    k_xx, g_xx = k_and_w(xa, xb)
    k_yy, _ = k_and_w(ya, yb)
    k_ab, g_ab = k_and_w(xa, yb)
    k_ba, g_ba = k_and_w(xb, ya)
    value = (k_xx.astype(np.float64) + k_yy - k_ab - k_ba).sum() / P
    dX = xp.zeros_like(X)
    dX[0:2 * P:2] = (g_ab - g_xx) / X.dtype.type(P)
    dX[1:2 * P:2] = (g_xx + g_ba) / X.dtype.type(P)
    return xp.asarray(value, dtype=np.float64), dX
