"""The Gaussian-kernel matrix and MMD² on each CPU backend, against plain float64 loops."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import gaussian_kernel_loops

from minigan.gradcheck import numerical_gradient, rel_error
from minigan.kernels import default_sigmas, gaussian_kernel_matrix, median_sigma, mmd2

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
    assert rel_error(dX, num) <= 1e-6


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
