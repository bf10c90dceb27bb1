"""The Gaussian-kernel matrix, its sums and exact MMD² on each CPU backend and through tiles,
against plain float64 loops."""
import contextlib
import functools
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import gaussian_kernel_loops

from minigan.gradcheck import difference_noise, numerical_gradient, rel_error
from minigan.kernels import (default_sigmas, gaussian, gaussian_kernel_matrix, gaussian_kernel_sum, median_sigma,
                             mmd2, threads, tiled)
from minigan.kernels.gaussian_numba import fused_numba

CPU = ["numpy", "numba"]
TOL = {np.float64: 1e-12, np.float32: 2e-6}
seeds = st.integers(0, 2 ** 31 - 1)


def rel_max(K, ref):
    """max |K − ref| / max |ref|: entries far below the largest carry no weight in a loss."""
    return float(np.max(np.abs(K.astype(np.float64) - ref)) / np.max(np.abs(ref)))


def draw(rng, n, m, d, dtype, collapsed):
    if collapsed:  # a mode-collapsed batch: rows a hair apart, far from the origin
        base = rng.standard_normal(d) * 10 + 50
        X = base + 1e-3 * rng.standard_normal((n, d))
        Y = base + 1e-3 * rng.standard_normal((m, d))
    else:
        X, Y = rng.standard_normal((n, d)), rng.standard_normal((m, d)) + 0.5
    return X.astype(dtype), Y.astype(dtype)


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(n=st.integers(1, 12), m=st.integers(1, 12), d=st.integers(1, 40), collapsed=st.booleans(),
       scale=st.floats(0.2, 5), n_sigmas=st.integers(1, 5), seed=seeds)
def test_kernel_matches_loops(backend, dtype, n, m, d, collapsed, scale, n_sigmas, seed):
    rng = np.random.default_rng(seed)
    X, Y = draw(rng, n, m, d, dtype, collapsed)
    base = 1e-3 * np.sqrt(2 * d) if collapsed else np.sqrt(2 * d)  # about the median distance
    sigmas = [base * scale * 2.0 ** k for k in range(n_sigmas)]
    K = gaussian_kernel_matrix(X, Y, sigmas, backend=backend)
    assert K.shape == (n, m) and K.dtype == dtype
    assert rel_max(K, gaussian_kernel_loops(X, Y, sigmas)) <= TOL[dtype]


@pytest.mark.parametrize("backend", CPU)
@given(n=st.integers(1, 10), m=st.integers(1, 10), d=st.integers(1, 20), n_sigmas=st.integers(1, 4), seed=seeds)
def test_kernel_symmetries(backend, n, m, d, n_sigmas, seed):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    sigmas = rng.uniform(0.5, 4, n_sigmas)
    np.testing.assert_allclose(gaussian_kernel_matrix(X, Y, sigmas, backend=backend),
                               gaussian_kernel_matrix(Y, X, sigmas, backend=backend).T, rtol=1e-12, atol=1e-15)
    Kxx = gaussian_kernel_matrix(X, X, sigmas, backend=backend)
    np.testing.assert_allclose(Kxx, Kxx.T, rtol=1e-12, atol=1e-15)
    assert np.linalg.eigvalsh((Kxx + Kxx.T) / 2).min() >= -1e-10 * n_sigmas  # PSD up to rounding


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(n=st.integers(1, 10), m=st.integers(1, 10), d=st.integers(1, 20), seed=seeds)
def test_biased_mmd_is_zero_on_itself_and_never_negative(backend, dtype, n, m, d, seed):
    rng = np.random.default_rng(seed)
    X, Y = draw(rng, n, m, d, dtype, collapsed=False)
    sigmas = rng.uniform(0.5, 3, 3) * np.sqrt(d)
    same, _ = mmd2(X, X.copy(), sigmas, backend=backend)
    assert abs(same) <= 10 * TOL[dtype] * len(sigmas)
    value, _ = mmd2(X, Y, sigmas, backend=backend)
    assert value >= 0
    # and it equals the definition on the plain-loop kernel
    ref = (gaussian_kernel_loops(X, X, sigmas).mean() + gaussian_kernel_loops(Y, Y, sigmas).mean()
           - 2 * gaussian_kernel_loops(X, Y, sigmas).mean())
    assert abs(value - ref) <= 10 * TOL[dtype] * len(sigmas)


def test_unbiased_mmd_has_the_expected_value():
    """X, Y ~ N(0, I_d) and N(μ, I_d): with one σ, MMD² = 2 (σ²/(σ²+2))^(d/2) (1 − exp(−‖μ‖²/(2(σ²+2)))).
    The mean of the U-statistic over many draws converges to it; the V-statistic's is biased upward."""
    rng = np.random.default_rng(0)
    d, sigma, n = 2, 1.5, 20
    mu = np.array([1.0, 0.0])
    s2 = sigma ** 2
    truth = 2 * (s2 / (s2 + 2)) ** (d / 2) * (1 - np.exp(-mu @ mu / (2 * (s2 + 2))))
    u, v = [], []
    for _ in range(2000):
        X, Y = rng.standard_normal((n, d)), rng.standard_normal((n, d)) + mu
        u.append(mmd2(X, Y, [sigma], unbiased=True)[0])
        v.append(mmd2(X, Y, [sigma], unbiased=False)[0])
    u, v = np.array(u), np.array(v)
    stderr = u.std() / np.sqrt(len(u))
    assert abs(u.mean() - truth) < 4 * stderr
    assert v.mean() - truth > 4 * v.std() / np.sqrt(len(v))  # the V-statistic is biased up
    assert (u < 0).any()  # an unbiased estimator of a small quantity must go below 0 sometimes


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("unbiased", [False, True])
@given(n=st.integers(2, 8), m=st.integers(2, 8), d=st.integers(1, 10), n_sigmas=st.integers(1, 4), seed=seeds)
def test_mmd_gradient_matches_numerical(backend, unbiased, n, m, d, n_sigmas, seed):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((m, d)) * 1.5
    sigmas = rng.uniform(0.5, 3, n_sigmas) * np.sqrt(d)
    value, dX = mmd2(X, Y, sigmas, unbiased=unbiased, backend=backend)
    num = numerical_gradient(lambda: mmd2(X, Y, sigmas, unbiased=unbiased, backend=backend)[0], X)
    assert rel_error(dX, num, difference_noise(len(sigmas), X.size)) <= 1e-6


@contextlib.contextmanager
def tiny_tiles(cols=4, parallel=True, kept=False):
    """Tiles of `cols` columns, worker threads however small the work (two of them, whatever
    $MINIGAN_THREADS says: conftest sets it to 1 under pytest-xdist), centring per tile unless kept."""
    with mock.patch.multiple(tiled, TILE_BYTES=1, MIN_COLS=cols, PARALLEL_MIN_WORK=0 if parallel else 1 << 62,
                             SMALL_BYTES=1 << 30 if kept else 0), \
            mock.patch.multiple(threads, workers=lambda: 2, _pool={}):
        yield


@settings(max_examples=25)
@pytest.mark.parametrize("unbiased", [False, True])
@given(n=st.integers(2, 13), m=st.integers(2, 13), d=st.integers(1, 5), cols=st.sampled_from([2, 4, 8]),
       parallel=st.booleans(), kept=st.booleans(), seed=seeds)
def test_tiled_mmd_gradient_matches_numerical(unbiased, n, m, d, cols, parallel, kept, seed):
    """Many tiles (rows straddling none, the diagonal inside some), on worker threads or not."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((m, d)) + 0.3
    sigmas = rng.uniform(0.5, 3, 2) * np.sqrt(d)
    with tiny_tiles(cols, parallel, kept):
        value, dX = mmd2(X, Y, sigmas, unbiased=unbiased)
        num = numerical_gradient(lambda: mmd2(X, Y, sigmas, unbiased=unbiased)[0], X)
    whole, dX_whole = mmd2(X, Y, sigmas, unbiased=unbiased)
    assert rel_error(dX, num, difference_noise(len(sigmas), X.size)) <= 1e-6
    assert abs(value - whole) <= 1e-13 and rel_error(dX, dX_whole) <= 1e-12


@pytest.mark.parametrize("backend", CPU)
@settings(max_examples=30)
@given(r=st.integers(1, 9), c=st.integers(1, 9), diag=st.one_of(st.none(), st.integers(-3, 9)), upper=st.booleans(),
       write=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=seeds)
def test_fused_pass_matches_its_definition(backend, r, c, diag, upper, write, dtype, seed):
    """numba's pass and NumPy's reference against the docstring's formulas written entry by entry."""
    if upper and diag is None:
        diag = 0
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((r, 3)).astype(dtype), rng.standard_normal((c, 3)).astype(dtype)
    xx, yy, G = (A * A).sum(1), (B * B).sum(1), A @ B.T
    sigmas, scale = [0.7, 2.0], [0.3, -1.5]
    D = np.maximum(xx[:, None].astype(np.float64) + yy[None, :] - 2 * G, 0)
    rows, cols = np.indices((r, c))
    if diag is not None:
        D[cols == rows + diag] = 0
    E = [np.exp(-D / (2 * s * s)) for s in sigmas]
    K, W = sum(E), sum(w * e for w, e in zip(scale, E))
    if upper:
        K, W = K * (cols > rows + diag), W * (cols > rows + diag)
    out = G.copy()
    fused = gaussian.fused_numpy if backend == "numpy" else fused_numba
    ksum, wsum = fused(xx, yy, out, sigmas, scale, diag=diag, upper=upper, write=write)
    tol = TOL[dtype] * 4
    np.testing.assert_allclose(ksum, K.sum(1), rtol=tol, atol=tol)
    np.testing.assert_allclose(wsum, W.sum(1), rtol=tol, atol=tol)
    if write and not upper:
        np.testing.assert_allclose(out, W, rtol=tol, atol=tol)
    if not write:
        assert np.array_equal(out, G)


@pytest.mark.parametrize("backend", CPU)
@settings(max_examples=30)
@given(n=st.integers(1, 12), m=st.integers(1, 12), d=st.integers(1, 6), p=st.sampled_from([None, 0, 3]),
       same=st.booleans(), tiles=st.booleans(), seed=seeds)
def test_kernel_sum_matches_loops(backend, n, m, d, p, same, tiles, seed):
    """K·w (w of shape (m,) or (m, p)) and K·1, against the loops; Y is X gives the diagonal S exactly."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = X if same else rng.standard_normal((m, d))
    sigmas = [0.8, 2.5]
    w = None if p is None else rng.standard_normal((len(Y),) if p == 0 else (len(Y), p))
    K = gaussian_kernel_loops(X, Y, sigmas)
    with tiny_tiles(4) if tiles else contextlib.nullcontext():
        out = gaussian_kernel_sum(X, Y, sigmas, w, backend=backend)
    ref = K.sum(1) if w is None else K @ w
    assert out.dtype == np.float64 and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    if same:
        Kd = np.zeros((n, n))
        gaussian.fused_numpy(*(np.zeros(n),) * 2, Kd, sigmas, diag=0)
        assert np.all(Kd[np.arange(n), np.arange(n)] == len(sigmas))


def tile_loop_reference(X, Y, sigmas, unbiased, tile=1000):
    """MMD² and dX in float64, with distances from exact differences, one tile at a time:
    dX_i = −2a Σ_j Wxx_ij (x_i − x_j) + 2b Σ_j Wxy_ij (x_i − y_j) = Σ_j V_ij (x_i − z_j)."""
    n, m = len(X), len(Y)
    a = 1 / (n * (n - 1)) if unbiased else 1 / n ** 2
    sums, dX = {}, np.zeros_like(X)
    for name, A, B, coef in (("xx", X, X, -2 * a), ("yy", Y, Y, 0), ("xy", X, Y, 2 / (n * m))):
        sums[name] = 0.0
        for lo in range(0, len(A), tile):
            for clo in range(0, len(B), tile):
                a_, b_ = A[lo:lo + tile], B[clo:clo + tile]
                D = sum((a_[:, k, None] - b_[None, :, k]) ** 2 for k in range(X.shape[1]))
                E = [np.exp(-D / (2 * s * s)) for s in sigmas]
                sums[name] += sum(E).sum()
                V = coef * sum(e / (s * s) for e, s in zip(E, sigmas))
                dX[lo:lo + tile] += V.sum(1)[:, None] * a_ - V @ b_ if coef else 0
    S = len(sigmas)
    if unbiased:
        value = (sums["xx"] - n * S) / (n * (n - 1)) + (sums["yy"] - m * S) / (m * (m - 1)) - 2 * sums["xy"] / (n * m)
    else:
        value = sums["xx"] / n ** 2 + sums["yy"] / m ** 2 - 2 * sums["xy"] / (n * m)
    return value, dX


@functools.cache
def reference_at_2000():
    """Inputs exactly representable in float32, so that one float64 reference serves both dtypes."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 6)).astype(np.float32).astype(np.float64)
    Y = (rng.standard_normal((2000, 6)) * 1.2 + 0.2).astype(np.float32).astype(np.float64)
    sigmas = [1.0, 2.0, 4.0]
    ref = {u: tile_loop_reference(X, Y, sigmas, u) for u in (False, True)}
    return X, Y, sigmas, ref, gaussian_kernel_loops(X[:50], Y, sigmas).sum(1)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_the_paths_agree_with_a_float64_reference_at_2000(dtype, tol, monkeypatch):
    """n = m = 2,000: NumPy's reference pass, numba in one tile, numba in many tiles on worker
    threads, and the CuPy code path (through the test double) against a float64 loop over tiles."""
    import fakecupy
    monkeypatch.setitem(sys.modules, "cupy", fakecupy)
    from minigan import backend as mb
    mb._check_cupy.cache_clear()
    Xd, Yd, sigmas, ref, ref_sum = reference_at_2000()
    Xd, Yd = Xd.astype(dtype), Yd.astype(dtype)
    paths = {"numpy": lambda f: f(Xd, Yd, backend="numpy"), "numba": lambda f: f(Xd, Yd, backend="numba"),
             "cupy (double)": lambda f: f(fakecupy.asarray(Xd), fakecupy.asarray(Yd))}
    for name, path in list(paths.items()) + [("numba, tiles on threads", None)]:
        ctx = tiny_tiles(256, parallel=True) if path is None else contextlib.nullcontext()
        path = path or paths["numba"]
        both = name.startswith("numba")  # the slower paths check one estimator, the kernel sum and dX
        with ctx:
            got = {u: path(lambda A, B, **kw: mmd2(A, B, sigmas, unbiased=u, **kw)) for u in ((False, True) if both
                                                                                              else (True,))}
            ksum = path(lambda A, B, **kw: gaussian_kernel_sum(A, B, sigmas, **kw))
        for u, (value, dX) in got.items():
            value, dX = float(value), mb.to_host(dX)
            assert dX.dtype == dtype
            assert abs(value - ref[u][0]) <= tol * 1e-2, (name, u)  # the value is a difference of sums near 1
            assert rel_error(dX, ref[u][1]) <= tol, (name, u)
        np.testing.assert_allclose(mb.to_host(ksum)[:50], ref_sum, rtol=tol)
    mb._check_cupy.cache_clear()


def test_backends_agree_in_float32_at_gan_batch_size():
    rng = np.random.default_rng(0)
    X, Y = rng.random((64, 784), dtype=np.float32), rng.random((64, 784), dtype=np.float32)
    s = default_sigmas(X, Y)
    ref = gaussian_kernel_loops(X, Y, s)
    for b in CPU + ["auto"]:
        assert rel_max(gaussian_kernel_matrix(X, Y, s, backend=b), ref) <= 2e-6
    v0, g0 = mmd2(X, Y, s, backend="numpy")
    v1, g1 = mmd2(X, Y, s, backend="numba")
    assert abs(v0 - v1) <= 1e-6 * abs(v0) and rel_error(g0, g1) <= 1e-5


def test_bandwidth_helpers():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 784)).astype(np.float32)
    s = median_sigma(X)
    assert abs(s - np.sqrt(784)) / np.sqrt(784) < 0.05  # E‖x−y‖² = 2d for N(0, I)
    assert default_sigmas(X) == tuple(s * f for f in (0.25, 0.5, 1.0, 2.0, 4.0))
    # the reason for the helper: σ = 1 on 784-d pixels gives K ≈ I, so no gradient signal
    K = gaussian_kernel_matrix(X[:10], X[10:20], [1.0])
    assert K.max() < 1e-100 or K.max() == 0
    with pytest.raises(ValueError, match="all samples are identical"):
        median_sigma(np.ones((4, 3)))


@pytest.mark.parametrize("call, error, match", [
    (lambda X, Y: gaussian_kernel_matrix(X, Y[:, :3], [1.0]), ValueError, r"different feature sizes: X \(4, 5\), Y \(3, 3\)"),
    (lambda X, Y: gaussian_kernel_matrix(X[:0], Y, [1.0]), ValueError, r"expected a non-empty X, got shape \(0, 5\)"),
    (lambda X, Y: gaussian_kernel_matrix(X, np.where(Y > 0, np.nan, Y), [1.0]), ValueError, r"must be finite"),
    (lambda X, Y: mmd2(X, Y, [1.0, 0.0]), ValueError, r"bandwidths sigma > 0, got \[1.0, 0.0\]"),
    (lambda X, Y: mmd2(X, Y, []), ValueError, r"bandwidths sigma > 0"),
    (lambda X, Y: gaussian_kernel_matrix(X[0], Y, [1.0]), ValueError, r"expected X of shape \(batch, features\), got \(5,\)"),
    (lambda X, Y: gaussian_kernel_matrix(X, Y.astype(np.float32), [1.0]), TypeError, r"different dtypes"),
    (lambda X, Y: gaussian_kernel_matrix(X, Y, [1.0], backend="cuda"), ValueError, r"expected backend in"),
    (lambda X, Y: gaussian_kernel_matrix(X, Y, [1.0], backend="cupy"), TypeError, r"backend 'cupy' cannot take numpy"),
    (lambda X, Y: mmd2(X[:1], Y, [1.0], unbiased=True), ValueError, r"at least 2 samples"),
    (lambda X, Y: gaussian_kernel_matrix(X.astype(int), Y, [1.0]), TypeError, r"float32 or float64, got int64"),
])
def test_bad_input(call, error, match):
    rng = np.random.default_rng(0)
    with pytest.raises(error, match=match):
        call(rng.standard_normal((4, 5)), rng.standard_normal((3, 5)))


class _ArrayOnAnotherBackend:
    """Looks like a CuPy array to minigan.backend (which asks only for the type's module)."""
    __module__ = "cupy._core.core"

    def __init__(self, a):
        self.shape, self.ndim, self.dtype = a.shape, a.ndim, a.dtype


def test_arrays_on_two_backends_are_rejected_before_any_work():
    X = np.ones((3, 4))
    with pytest.raises(TypeError, match="arrays on two different backends"):
        gaussian_kernel_matrix(X, _ArrayOnAnotherBackend(X), [1.0])
    with pytest.raises(TypeError, match="arrays on two different backends"):
        mmd2(_ArrayOnAnotherBackend(X), X, [1.0])


@pytest.mark.parametrize("backend", CPU)
def test_float32_gradient_on_a_collapsed_batch(backend):
    """dX is formed from centred rows: with raw rows far from the origin, diag(W1)X − WX would
    cancel large numbers (the old code's float32 error here was 1.7e-3)."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal(64) * 10 + 50
    X = base + 1e-2 * rng.standard_normal((32, 64))
    Y = base + 1e-2 * rng.standard_normal((32, 64)) + 3e-3
    sigmas = [0.02, 0.05, 0.1]
    _, g64 = mmd2(X, Y, sigmas, backend=backend)
    _, g32 = mmd2(X.astype(np.float32), Y.astype(np.float32), sigmas, backend=backend)
    assert rel_error(g32, g64) <= 5e-4


@settings(max_examples=20)
@given(n=st.integers(1, 12), m=st.integers(1, 12), d=st.integers(1, 12), dtype=st.sampled_from([np.float32, np.float64]),
       seed=seeds)
def test_numba_centring_matches_the_reference(n, m, d, dtype, seed):
    """Z = [X − c; Y − c] with c the mean of X's and Y's first CENTRE_ROWS rows, and Z's squared
    row norms (n and m run past it)."""
    from minigan.kernels.gaussian_numba import centre_numba
    rng = np.random.default_rng(seed)
    X, Y = (rng.standard_normal((n, d)) * 3 + 40).astype(dtype), (rng.standard_normal((m, d)) + 40).astype(dtype)
    Z0, Z1 = np.empty((n + m, d), dtype), np.empty((n + m, d), dtype)
    c0, zz0 = gaussian.centre(X, Y, Z0)
    c1, zz1 = centre_numba(X, Y, Z1)
    k = tiled.CENTRE_ROWS
    c = np.concatenate([X[:k], Y[:k]]).astype(np.float64).mean(0)
    tol = 4 * np.finfo(dtype).eps * 40
    np.testing.assert_allclose(c1, c, atol=tol)
    np.testing.assert_allclose(Z1, np.concatenate([X, Y]) - c1, atol=tol)
    np.testing.assert_allclose(zz1, (Z1.astype(np.float64) ** 2).sum(1), rtol=4 * np.finfo(dtype).eps * d)
    np.testing.assert_allclose(Z1, Z0, atol=2 * tol)


def test_a_matrix_that_cannot_fit_is_refused_with_its_size(monkeypatch):
    monkeypatch.setattr(gaussian, "_available_bytes", lambda xp: 10 ** 9)
    X = np.zeros((20000, 3), np.float32)
    with pytest.raises(ValueError, match=r"gaussian_kernel_matrix: the 20,000 × 20,000 float32 matrix would take "
                                         r"1.6 GB and 1.0 GB are free; gaussian_kernel_sum and mmd2 work in tiles"):
        gaussian_kernel_matrix(X, X, [1.0])
    monkeypatch.undo()
    assert gaussian._available_bytes(np) > 0  # read from /proc/meminfo here


@pytest.mark.parametrize("where", ["X", "Y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30])
def test_nan_inf_and_overflow_are_found_from_the_norms(where, bad):
    """One check on the sum of the centred norms: any NaN or Inf reaches it (through the mean);
    in float32 so does a value whose square overflows."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    (X if where == "X" else Y)[2, 1] = bad
    for call in (lambda: mmd2(X, Y, [1.0]), lambda: gaussian_kernel_sum(X, Y, [1.0]),
                 lambda: gaussian_kernel_matrix(X, Y, [1.0])):
        with pytest.raises(ValueError, match=r"X and Y must be finite; found NaN or Inf \(or values whose squares "
                                             r"overflow float32\)"):
            call()


@pytest.mark.parametrize("weights, match", [
    (np.ones(4), r"gaussian_kernel_sum: expected weights of shape \(3,\) or \(3, p\), got \(4,\)"),
    (np.ones((3, 2, 1)), r"expected weights of shape \(3,\) or \(3, p\), got \(3, 2, 1\)"),
    ([1.0, 2.0, 3.0], r"got list"),
])
def test_bad_weights(weights, match):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        gaussian_kernel_sum(rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), [1.0], weights)


def test_parallel_tiles_give_the_same_bits_every_time():
    """Tasks are combined in their order, whichever thread ran them: the answer is reproducible."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((300, 5)).astype(np.float32), rng.standard_normal((280, 5)).astype(np.float32)
    with tiny_tiles(64):
        runs = [mmd2(X, Y, [1.0, 2.0]) for _ in range(3)]
    assert all(r[0] == runs[0][0] and np.array_equal(r[1], runs[0][1]) for r in runs)
