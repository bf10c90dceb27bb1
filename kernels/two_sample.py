"""The kernel two-sample test: is X drawn from the distribution of Y? (Gretton et al. 2012)

The statistic is the unbiased MMD² with the exact kernel. Under H0 (one distribution) the labels
"X" and "Y" are exchangeable, so the statistic of the pooled rows Z = [X; Y] relabelled at random
has the same distribution; the p-value is the rank of the observed statistic among them:

    p = (1 + #{permutations with MMD²_u ≥ observed}) / (1 + permutations)

Every labelling comes from one pass over Z's kernel, without the matrix: with u the 0/1 vector
of the rows labelled X (n of them, v = 1 − u), and K Z's kernel (diagonal S exactly),

    Σ_{X,X} K = uᵀKu,  Σ_{X,Y} K = uᵀK1 − uᵀKu,  Σ_{Y,Y} K = 1ᵀK1 − 2uᵀK1 + uᵀKu
    MMD²_u = (uᵀKu − nS)/(n(n−1)) + (Σ_{Y,Y} K − mS)/(m(m−1)) − 2 Σ_{X,Y} K/(nm)

so one gaussian_kernel_sum of Z against itself with the columns [u_0, u_1, …, 1] gives them all.
Computed in float64: the statistic is a small difference of large sums.
"""
from collections import namedtuple

import numpy as np

from minigan import backend as _backend

from .gaussian import _check, default_sigmas, gaussian_kernel_sum

MMDTest = namedtuple("MMDTest", ["mmd2", "p_value", "sigmas"])
WEIGHT_BYTES = 64 << 20  # labellings per pass over the kernel: N × columns × 8 bytes at most


def mmd_test(X, Y, sigmas=None, *, permutations=200, seed=0, backend="auto"):
    """MMDTest(mmd2, p_value, sigmas): the unbiased MMD² of X (n, d) and Y (m, d) and its
    permutation p-value over `permutations` random relabellings drawn from `seed`.
    sigmas: default_sigmas(X, Y) (the median heuristic on the pooled rows) when None."""
    _check(X, Y, [1.0] if sigmas is None else sigmas, "mmd_test")
    if not (isinstance(permutations, (int, np.integer)) and permutations >= 1):
        raise ValueError(f"mmd_test: expected permutations, an integer >= 1, got {permutations!r}")
    n, m = len(X), len(Y)
    if min(n, m) < 2:
        raise ValueError(f"mmd_test: needs at least 2 samples in X and Y, got {n} and {m}")
    xp = _backend.xp_of(X, Y)
    Z = xp.concatenate([X, Y]).astype(np.float64)
    sigmas = tuple(float(s) for s in (default_sigmas(Z[:n], Z[n:]) if sigmas is None else np.ravel(sigmas)))
    N, S = n + m, len(sigmas)
    rng = np.random.default_rng(seed)
    labels = np.zeros((permutations + 1, N))
    labels[0, :n] = 1  # the observed labelling
    for k in range(1, permutations + 1):
        labels[k, rng.permutation(N)[:n]] = 1
    per_pass = max(1, WEIGHT_BYTES // (8 * N) - 1)
    stats = []
    for lo in range(0, permutations + 1, per_pass):
        U = labels[lo:lo + per_pass].T
        KU = _backend.to_host(gaussian_kernel_sum(Z, Z, sigmas, xp.asarray(np.hstack([U, np.ones((N, 1))])),
                                                  backend=backend))
        Ku, K1 = KU[:, :-1], KU[:, -1]
        uKu, uK1, total = (U * Ku).sum(axis=0), U.T @ K1, K1.sum()
        xx, xy, yy = uKu, uK1 - uKu, total - 2 * uK1 + uKu
        stats.append((xx - n * S) / (n * (n - 1)) + (yy - m * S) / (m * (m - 1)) - 2 * xy / (n * m))
    stats = np.concatenate(stats)
    p = (1 + np.sum(stats[1:] >= stats[0])) / (1 + permutations)
    return MMDTest(float(stats[0]), float(p), sigmas)
