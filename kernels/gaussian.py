"""The Gaussian kernel, its sums and MMD², with one readable NumPy reference for the fused pass.

    K[i, j] = Σ_s exp(−‖x_i − y_j‖² / (2 σ_s²)),   X (n, d), Y (m, d), sigmas σ_s > 0.

Every backend computes it the same way (kernels/tiled.py holds the loop over tiles): subtract
a common point c, the mean of a few rows, from X and Y (the distances are unchanged, and on a
collapsed batch float32 cancellation error falls by orders of magnitude), take ‖x‖² + ‖y‖² − 2 X Yᵀ with one
BLAS/cuBLAS matmul per tile, then one fused pass that clamps at 0, takes the exps, sums over
the bandwidths and over each row. Only that fused pass differs between backends: NumPy here,
numba in gaussian_numba.py, CuPy in gaussian_cupy.py. The approximations (random Fourier
features, the linear-time statistic) are in approx.py, the two-sample test in two_sample.py.
"""
import math

import numpy as np

from minigan import backend as _backend

from . import tiled

BACKENDS = ("auto", "numpy", "numba", "cupy")
ESTIMATORS = ("exact", "rff", "linear")
CHECKED_BYTES = 1 << 28  # gaussian_kernel_matrix asks for the free memory past this size


def _check(X, Y, sigmas, name):
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
    _backend.xp_of(X, Y)  # TypeError when X and Y live on two backends
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"{name}: X and Y have different feature sizes: X {tuple(X.shape)}, Y {tuple(Y.shape)}")
    if X.dtype != Y.dtype:
        raise TypeError(f"{name}: X and Y have different dtypes: {X.dtype} and {Y.dtype}")
    try:
        s = [float(v) for v in (sigmas if isinstance(sigmas, (list, tuple)) else
                                np.ravel(_backend.to_host(sigmas) if hasattr(sigmas, "shape") else sigmas))]
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


def centre(X, Y, Z):
    """Z = [X − c; Y − c] (Z (n + m, d) given), with c the mean of the first tiled.CENTRE_ROWS (8)
    rows of X and of Y: the distances are unchanged and the norms small. For rows drawn alike
    with covariance Σ, E‖z‖² = (1 + 1/16)·trace(Σ), against trace(Σ) for the mean of all rows,
    whose pass over the data this saves. Returns (c, ‖z_i‖² for each row of Z)."""
    xp = _backend.xp_of(X, Y)
    a, b = X[:tiled.CENTRE_ROWS], Y[:tiled.CENTRE_ROWS]
    c = ((a.sum(axis=0, dtype=np.float64) + b.sum(axis=0, dtype=np.float64)) / (len(a) + len(b))).astype(X.dtype)
    xp.subtract(X, c, out=Z[:len(X)])
    xp.subtract(Y, c, out=Z[len(X):])
    return c, xp.einsum("ij,ij->i", Z, Z)


def sq_norms(A):
    """‖a_i‖² for each row, without an (n, d) temporary."""
    return _backend.xp_of(A).einsum("ij,ij->i", A, A)


def fused_numpy(xx, yy, G, sigmas, scale=None, *, diag=None, upper=False, write=True):
    """The fused pass, plainly. xx (r,), yy (c,): squared norms; G (r, c): the Gram block.

        D_ij = max(xx_i + yy_j − 2 G_ij, 0), and D_ij = 0 where j = i + diag (a point against itself)
        e_s = exp(−D / (2σ_s²));   K = Σ_s e_s;   W = Σ_s scale_s e_s   (W = K when scale is None)

    Returns the row sums of K and of W in float64 (only over j > i + diag when upper: the
    strict upper triangle of a symmetric block), and writes W over G when write.
    """
    xp = _backend.xp_of(G)
    D = xp.maximum(xx[:, None] + yy[None, :] - 2 * G, 0)
    rows, cols = xp.arange(G.shape[0])[:, None], xp.arange(G.shape[1])[None, :]
    if diag is not None:
        D = xp.where(cols == rows + diag, 0, D)
    scale = [1.0] * len(sigmas) if scale is None else scale
    K, W = xp.zeros_like(G), xp.zeros_like(G)
    for s, w in zip(sigmas, scale):
        E = xp.exp(D * G.dtype.type(-0.5 / s ** 2))
        K += E
        W += E * G.dtype.type(w)
    if upper:
        K, W = (xp.where(cols > rows + diag, A, 0) for A in (K, W))
    if write:
        G[...] = W
    return K.sum(axis=1, dtype=np.float64), W.sum(axis=1, dtype=np.float64)


def _fused(backend_name):
    """(the fused pass, the centring) of a backend: only numba has its own centring."""
    if backend_name == "numpy":
        return fused_numpy, centre
    if backend_name == "numba":
        from .gaussian_numba import centre_numba, fused_numba
        return fused_numba, centre_numba
    from .gaussian_cupy import fused_cupy
    return fused_cupy, centre


def _available_bytes(xp):
    """Free memory where the array would live (host: MemAvailable; device: CUDA's free), or None."""
    try:
        if xp is np:
            with open("/proc/meminfo") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
        return int(xp.cuda.runtime.memGetInfo()[0])
    except (OSError, StopIteration, AttributeError, ValueError):
        return None


def gaussian_kernel_matrix(X, Y, sigmas, *, backend="auto"):
    """K (n, m), K[i, j] = Σ_s exp(−‖x_i − y_j‖² / (2 σ_s²)), in the dtype of X.

    X: (n, d), Y: (m, d), float32 or float64, on one backend. sigmas: one σ or several (σ,
    not σ² or γ). backend: "numpy" (the reference), "numba" (CPU), "cupy" (GPU), or "auto"
    (cupy for CuPy arrays, numba otherwise). A matrix that would not fit in free memory is
    refused with its size: gaussian_kernel_sum and mmd2 need no matrix.
    """
    s = _check(X, Y, sigmas, "gaussian_kernel_matrix")
    fns = _fused(_resolve(backend, X))
    xp = _backend.xp_of(X)
    need = len(X) * len(Y) * X.dtype.itemsize
    free = _available_bytes(xp) if need > CHECKED_BYTES else None
    if free is not None and need > free:
        raise ValueError(f"gaussian_kernel_matrix: the {len(X):,} × {len(Y):,} {X.dtype} matrix would take "
                         f"{need / 1e9:.1f} GB and {free / 1e9:.1f} GB are free; gaussian_kernel_sum and mmd2 "
                         f"work in tiles without it")
    return tiled.kernel_matrix(X, Y, s, fns, "gaussian_kernel_matrix")


def gaussian_kernel_sum(X, Y, sigmas, weights=None, *, backend="auto", check_finite=True):
    """K w (weights (m,) or (m, p)), or K's row sums K 1 (weights None), float64 on X's backend,
    computed in tiles: the n × m matrix is never held. When Y is X (the same array) the diagonal
    is exactly S = len(sigmas): k(x, x) = Σ_s 1."""
    s = _check(X, Y, sigmas, "gaussian_kernel_sum")
    if weights is not None:
        if not (hasattr(weights, "ndim") and weights.ndim in (1, 2) and len(weights) == len(Y)):
            raise ValueError(f"gaussian_kernel_sum: expected weights of shape ({len(Y)},) or ({len(Y)}, p), "
                             f"got {getattr(weights, 'shape', type(weights).__name__)}")
        _backend.xp_of(X, weights)
    fns = _fused(_resolve(backend, X))
    T = tiled.Tiles(X, Y, s, fns, check_finite=check_finite, name="gaussian_kernel_sum")
    return tiled.kernel_sum(T, weights, same=Y is X)


def mmd2(X, Y, sigmas, *, unbiased=None, estimator="exact", features=1024, seed=0, backend="auto",
         check_finite=True):
    """MMD² between samples X (n, d) (the generated batch) and Y (m, d), and its gradient dX.

    With Kxx, Kyy, Kxy the Gaussian-kernel blocks (k(x, x) = S exactly, never the computed one):
      biased (V-statistic, the default):  mean(Kxx) + mean(Kyy) − 2 mean(Kxy); ≥ 0, and 0 for X = Y.
      unbiased (U-statistic, unbiased=True): the Kxx and Kyy means leave out the diagonal,
        Σ_{i≠j} Kxx/(n(n−1)) + Σ_{i≠j} Kyy/(m(m−1)) − 2 mean(Kxy); its expectation is MMD², so it
        can be negative. Needs n, m ≥ 2.
    Gradient, with Wxx, Wxy the same blocks weighted by 1/σ_s² per bandwidth and a, b the
    weights of the Kxx and Kxy terms (biased: 1/n², 1/(nm); unbiased: 1/(n(n−1)), 1/(nm)):
      dX = −2a (diag(Wxx 1) − Wxx) X + 2b (diag(Wxy 1) X − Wxy Y),
    taken on centred rows, in tiles (kernels/tiled.py): memory stays bounded at any n and m.

    estimator: "exact" (the above), "rff" (random Fourier features: `features` per bandwidth,
    drawn from `seed`) or "linear" (Gretton et al. 2012's linear-time statistic, unbiased
    only): approx.py has their formulas. Returns (value as a 0-d float64 array on X's backend,
    dX of X's shape and dtype). check_finite=False skips the NaN/Inf check, which on CuPy waits
    for the device (the trainer checks its losses itself).
    """
    s = _check(X, Y, sigmas, "mmd2")
    if estimator not in ESTIMATORS:
        raise ValueError(f"mmd2: expected estimator in {ESTIMATORS}, got {estimator!r}")
    if estimator == "linear" and unbiased is False:
        raise ValueError("mmd2: the linear-time estimator is unbiased only; got unbiased=False")
    unbiased = estimator == "linear" if unbiased is None else bool(unbiased)
    n, m = len(X), len(Y)
    if unbiased and min(n, m) < 2:
        raise ValueError(f"mmd2: the unbiased estimator needs at least 2 samples in X and Y, got {n} and {m}")
    fns = _fused(_resolve(backend, X))
    if estimator == "exact":
        return tiled.mmd2_exact(tiled.Tiles(X, Y, s, fns, check_finite=check_finite, name="mmd2"), unbiased)
    from . import approx
    if check_finite:
        approx.check_finite(X, Y, "mmd2")
    if estimator == "rff":
        return approx.mmd2_rff(X, Y, s, unbiased=unbiased, features=features, seed=seed)
    return approx.mmd2_linear(X, Y, s)


def median_sigma(X, Y=None, *, max_rows=2000, seed=0):
    """The median heuristic: σ = sqrt(median of the pairwise squared distances / 2) over the
    rows of X and Y together (off-diagonal pairs), so that exp(−D/(2σ²)) is 1/e at the median.
    Past max_rows rows, over max_rows of them drawn without replacement from `seed`."""
    xp = _backend.xp_of(X, Y)
    Z = X if Y is None else xp.concatenate([X, Y])
    if len(Z) > max_rows:
        Z = Z[xp.asarray(np.sort(np.random.default_rng(seed).choice(len(Z), max_rows, replace=False)))]
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
