"""The Gaussian-kernel matrix and MMD², with one readable NumPy reference.

    K[i, j] = Σ_s exp(−‖x_i − y_j‖² / (2 σ_s²)),   X (n, d), Y (m, d), sigmas σ_s > 0.

Every backend computes it the same way: subtract a common mean from X and Y (the
distances are unchanged, and on a collapsed batch float32 cancellation error falls by
orders of magnitude), take ‖x‖² + ‖y‖² − 2 X Yᵀ with one BLAS/cuBLAS matmul, then one
fused pass that clamps at 0, takes the exps and sums over the bandwidths. Only that
fused pass differs between backends: NumPy here, numba in gaussian_numba.py, CuPy in
gaussian_cupy.py.
"""
import math

import numpy as np

from minigan import backend as _backend

BACKENDS = ("auto", "numpy", "numba", "cupy")


def _check(X, Y, sigmas, name, check_finite=True):
    """Validate inputs before any work; return the sigmas as a list of floats."""
    for label, A in (("X", X), ("Y", Y)):
        if not (hasattr(A, "ndim") and hasattr(A, "dtype")):
            raise TypeError(f"{name}: expected {label} to be an array, got {type(A).__name__}")
        if A.ndim != 2:
            raise ValueError(f"{name}: expected {label} of shape (batch, features), got {tuple(A.shape)}")
        if A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"{name}: expected a non-empty {label}, got shape {tuple(A.shape)}")
        if A.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}: expected {label} of dtype float32 or float64, got {A.dtype}")
    xp = _backend.xp_of(X, Y)  # TypeError when X and Y live on two backends
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"{name}: X and Y have different feature sizes: X {tuple(X.shape)}, Y {tuple(Y.shape)}")
    if X.dtype != Y.dtype:
        raise TypeError(f"{name}: X and Y have different dtypes: {X.dtype} and {Y.dtype}")
    if check_finite and not (bool(xp.isfinite(X).all()) and bool(xp.isfinite(Y).all())):
        raise ValueError(f"{name}: X and Y must be finite; found NaN or Inf")
    try:
        s = [float(v) for v in np.ravel(_backend.to_host(sigmas) if hasattr(sigmas, "shape") else sigmas)]
    except (TypeError, ValueError):
        s = []
    if not s or not all(math.isfinite(v) and v > 0 for v in s):
        raise ValueError(f"{name}: expected one or more finite bandwidths sigma > 0, got {sigmas!r}")
    return s


def _resolve(name, X):
    if name not in BACKENDS:
        raise ValueError(f"gaussian kernel: expected backend in {BACKENDS}, got {name!r}")
    if name == "auto":
        return "cupy" if _backend.is_cupy(X) else "numba"
    if (name == "cupy") != _backend.is_cupy(X):
        raise TypeError(f"gaussian kernel: backend {name!r} cannot take {type(X).__module__} arrays")
    return name


def center(X, Y):
    """X − c and Y − c, with c the mean of all rows of X and Y: the distances are unchanged,
    and the norms in ‖x‖² + ‖y‖² − 2xᵀy become small, so cancellation error does too."""
    c = (X.sum(axis=0) + Y.sum(axis=0)) / (len(X) + len(Y))
    return X - c, Y - c


def sq_norms(A):
    """‖a_i‖² for each row, without an (n, d) temporary."""
    return _backend.xp_of(A).einsum("ij,ij->i", A, A)


def fused_numpy(xx, yy, G, sigmas, weighted):
    """The fused pass, plainly: D = max(xx + yy − 2G, 0);  K = Σ_s exp(−D / (2σ_s²)).
    With weighted=True also Kw = Σ_s exp(−D / (2σ_s²)) / σ_s² (what the MMD gradient needs)."""
    xp = _backend.xp_of(G)
    D = xp.maximum(xx[:, None] + yy[None, :] - 2 * G, 0)
    K = xp.zeros_like(G)
    Kw = xp.zeros_like(G) if weighted else None
    for s in sigmas:
        E = xp.exp(D * G.dtype.type(-0.5 / s ** 2))
        K += E
        if weighted:
            E *= G.dtype.type(1 / s ** 2)
            Kw += E
    return K, Kw


def _fused(backend_name):
    if backend_name == "numpy":
        return fused_numpy
    if backend_name == "numba":
        from .gaussian_numba import fused_numba
        return fused_numba
    from .gaussian_cupy import fused_cupy
    return fused_cupy


def gaussian_kernel_matrix(X, Y, sigmas, *, backend="auto"):
    """K (n, m), K[i, j] = Σ_s exp(−‖x_i − y_j‖² / (2 σ_s²)), in the dtype of X.

    X: (n, d), Y: (m, d), float32 or float64, on one backend. sigmas: one σ or several (σ,
    not σ² or γ). backend: "numpy" (the reference), "numba" (CPU), "cupy" (GPU), or "auto"
    (cupy for CuPy arrays, numba otherwise).
    """
    s = _check(X, Y, sigmas, "gaussian_kernel_matrix")
    fused = _fused(_resolve(backend, X))
    Xc, Yc = center(X, Y)
    return fused(sq_norms(Xc), sq_norms(Yc), Xc @ Yc.T, s, False)[0]


def mmd2(X, Y, sigmas, *, unbiased=False, backend="auto", check_finite=True):
    """MMD² between samples X (n, d) (the generated batch) and Y (m, d), and its gradient dX.

    With Kxx, Kyy, Kxy the Gaussian-kernel blocks:
      biased (V-statistic, unbiased=False):  mean(Kxx) + mean(Kyy) − 2 mean(Kxy); ≥ 0, and 0 for X = Y.
      unbiased (U-statistic, unbiased=True): the Kxx and Kyy means leave out the diagonal,
        Σ_{i≠j} Kxx/(n(n−1)) + Σ_{i≠j} Kyy/(m(m−1)) − 2 mean(Kxy); its expectation is MMD², so it
        can be negative. It never reads the computed diagonal (which the GEMM trick leaves a
        rounding error away from S). Needs n, m ≥ 2.
    Gradient, with Wxx, Wxy the same blocks weighted by 1/σ_s² per bandwidth and a, b the
    weights of the Kxx and Kxy terms (biased: 1/n², 1/(nm); unbiased: 1/(n(n−1)), 1/(nm)):
      dX = −2a (diag(Wxx 1) − Wxx) X + 2b (diag(Wxy 1) X − Wxy Y).
    Returns (value as a 0-d float64 array on X's backend, dX of X's shape and dtype).
    check_finite=False skips the NaN/Inf scan, which on CuPy waits for the device (the
    trainer checks its losses itself).
    """
    s = _check(X, Y, sigmas, "mmd2", check_finite)
    n, m = len(X), len(Y)
    if unbiased and min(n, m) < 2:
        raise ValueError(f"mmd2: the unbiased estimator needs at least 2 samples in X and Y, got {n} and {m}")
    xp = _backend.xp_of(X)
    fused = _fused(_resolve(backend, X))
    Xc, Yc = center(X, Y)
    xx, yy = sq_norms(Xc), sq_norms(Yc)
    Kxx, Wxx = fused(xx, xx, Xc @ Xc.T, s, True)
    Kyy, _ = fused(yy, yy, Yc @ Yc.T, s, False)
    Kxy, Wxy = fused(xx, yy, Xc @ Yc.T, s, True)
    # The exact diagonal is k(x, x) = S (biased) or left out (unbiased); never the computed one.
    diag = 0.0 if unbiased else float(len(s))
    for K, size in ((Kxx, n), (Kyy, m)):
        K[xp.arange(size), xp.arange(size)] = diag
    Wxx[xp.arange(n), xp.arange(n)] = 0.0  # its term is multiplied by x_i − x_i = 0
    a = 1 / (n * (n - 1)) if unbiased else 1 / n ** 2
    c = 1 / (m * (m - 1)) if unbiased else 1 / m ** 2
    b = 1 / (n * m)
    f64 = np.float64
    value = a * Kxx.sum(dtype=f64) + c * Kyy.sum(dtype=f64) - 2 * b * Kxy.sum(dtype=f64)
    # Centred rows: the differences x_i − x_b are the same, without cancelling large norms.
    dX = (-2 * a) * (Wxx.sum(axis=1)[:, None] * Xc - Wxx @ Xc) \
        + (2 * b) * (Wxy.sum(axis=1)[:, None] * Xc - Wxy @ Yc)
    return value, dX.astype(X.dtype, copy=False)


def median_sigma(X, Y=None):
    """The median heuristic: σ = sqrt(median of the pairwise squared distances / 2) over the
    rows of X and Y together (off-diagonal pairs), so that exp(−D/(2σ²)) is 1/e at the median."""
    Z = X if Y is None else _backend.xp_of(X, Y).concatenate([X, Y])
    Zc = Z - Z.mean(axis=0)
    zz = sq_norms(Zc)
    D = _backend.to_host(zz[:, None] + zz[None, :] - 2 * (Zc @ Zc.T)).astype(np.float64)
    off = D[~np.eye(len(D), dtype=bool)]
    med = float(np.median(np.maximum(off, 0))) if off.size else 0.0
    if med <= 0:
        raise ValueError("median_sigma: all samples are identical; no scale to take a bandwidth from")
    return float(np.sqrt(med / 2))


def default_sigmas(X, Y=None, factors=(0.25, 0.5, 1.0, 2.0, 4.0)):
    """A mixture of bandwidths: the median-heuristic σ times each factor. A fixed σ = 1 on
    784-d pixels gives K ≈ I and no gradient; scaling from the data avoids that."""
    s = median_sigma(X, Y)
    return tuple(s * f for f in factors)
