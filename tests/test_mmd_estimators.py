"""mmd2's approximate estimators: random Fourier features and the linear-time statistic."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan.gradcheck import difference_noise, numerical_gradient, rel_error
from minigan.kernels import gaussian_kernel_matrix, mmd2

seeds = st.integers(0, 2 ** 31 - 1)


@settings(max_examples=25)
@pytest.mark.parametrize("estimator, unbiased", [("rff", False), ("rff", True), ("linear", None)])
@given(n=st.integers(2, 8), m=st.integers(2, 8), d=st.integers(1, 6), n_sigmas=st.integers(1, 3),
       features=st.integers(1, 40), seed=seeds)
def test_gradient_matches_numerical(estimator, unbiased, n, m, d, n_sigmas, features, seed):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((m, d)) * 1.5 + 0.2
    sigmas = rng.uniform(0.5, 3, n_sigmas) * np.sqrt(d)

    def f():
        return mmd2(X, Y, sigmas, estimator=estimator, unbiased=unbiased, features=features, seed=seed)

    value, dX = f()
    assert value.dtype == np.float64 and dX.shape == X.shape and dX.dtype == X.dtype
    noise = difference_noise(len(sigmas), X.size)  # kernel values are at most S = len(sigmas)
    assert rel_error(dX, numerical_gradient(lambda: f()[0], X), noise) <= 1e-6


@settings(max_examples=20)
@given(n=st.integers(2, 9), m=st.integers(2, 9), d=st.integers(1, 5), seed=seeds)
def test_rff_is_exact_on_its_own_kernel(n, m, d, seed):
    """The feature estimate is the estimator's formula applied to the kernel φ(x)·φ(y) it implies,
    written out as a matrix: biased and unbiased, term by term."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((m, d)) + 0.5
    sigmas, F = [1.0, 3.0], 16
    from minigan.kernels.approx import frequencies
    Om = frequencies(np, seed, d, F, sigmas, np.float64)
    c = np.concatenate([X, Y]).mean(0)

    def phi(A):
        P = (A - c) @ Om
        return np.hstack([np.cos(P), np.sin(P)]) / np.sqrt(F)

    Kxx, Kyy, Kxy = phi(X) @ phi(X).T, phi(Y) @ phi(Y).T, phi(X) @ phi(Y).T
    assert np.allclose(np.diag(Kxx), len(sigmas))  # ‖φ(x)‖² = S, as for the exact kernel
    biased = Kxx.mean() + Kyy.mean() - 2 * Kxy.mean()
    unbiased = ((Kxx.sum() - np.trace(Kxx)) / (n * (n - 1)) + (Kyy.sum() - np.trace(Kyy)) / (m * (m - 1))
                - 2 * Kxy.mean())
    assert abs(mmd2(X, Y, sigmas, estimator="rff", features=F, seed=seed)[0] - biased) <= 1e-12
    assert abs(mmd2(X, Y, sigmas, estimator="rff", features=F, seed=seed, unbiased=True)[0] - unbiased) <= 1e-12


def test_rff_converges_to_exact_and_depends_only_on_its_seed():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((200, 5)), rng.standard_normal((200, 5)) * 1.2 + 0.3
    sigmas = [1.5, 3.0, 6.0]
    exact = float(mmd2(X, Y, sigmas, unbiased=True)[0])
    errors = [abs(float(mmd2(X, Y, sigmas, estimator="rff", unbiased=True, features=F)[0]) - exact)
              for F in (16, 256, 4096)]
    assert errors[2] < errors[0] and errors[2] <= 0.02 * exact  # error ~ 1/√F
    a = mmd2(X, Y, sigmas, estimator="rff", seed=3)
    b = mmd2(X, Y, sigmas, estimator="rff", seed=3)
    c = mmd2(X, Y, sigmas, estimator="rff", seed=4)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[0] != c[0]


def test_linear_statistic_is_unbiased_and_written_from_its_definition():
    """h's mean over consecutive pairs, by loops; its mean over many draws is the population MMD²
    (X ~ N(0, I), Y ~ N(μ, I), one σ: 2 (σ²/(σ²+2))^(d/2) (1 − exp(−‖μ‖²/(2(σ²+2)))))."""
    rng = np.random.default_rng(0)
    d, sigma, n = 2, 1.5, 21  # odd: the last row of X sits out
    mu = np.array([1.0, 0.0])
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((n - 3, d)) + mu

    def k(u, v):
        return np.exp(-np.sum((u - v) ** 2) / (2 * sigma ** 2))
    P = (n - 3) // 2
    h = [k(X[2 * p], X[2 * p + 1]) + k(Y[2 * p], Y[2 * p + 1]) - k(X[2 * p], Y[2 * p + 1]) - k(X[2 * p + 1], Y[2 * p])
         for p in range(P)]
    value, dX = mmd2(X, Y, [sigma], estimator="linear")
    assert abs(value - np.mean(h)) <= 1e-14 and not dX[2 * P:].any()
    s2 = sigma ** 2
    truth = 2 * (s2 / (s2 + 2)) ** (d / 2) * (1 - np.exp(-mu @ mu / (2 * (s2 + 2))))
    draws = np.array([float(mmd2(rng.standard_normal((40, d)), rng.standard_normal((40, d)) + mu, [sigma],
                                 estimator="linear")[0]) for _ in range(3000)])
    assert abs(draws.mean() - truth) < 4 * draws.std() / np.sqrt(len(draws))


def test_float32_and_the_exact_kernel_agree_with_the_estimators_at_scale():
    """At n = 4,000 the three estimates are close (rff: 1/√F; linear: its larger variance), in float32."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4000, 8)).astype(np.float32)
    Y = (rng.standard_normal((4000, 8)) + 0.5).astype(np.float32)
    sigmas = [2.0, 4.0, 8.0]
    exact = float(mmd2(X, Y, sigmas, unbiased=True)[0])
    rff = float(mmd2(X, Y, sigmas, estimator="rff", unbiased=True, features=2048)[0])
    linear = float(mmd2(X, Y, sigmas, estimator="linear")[0])
    assert abs(rff - exact) <= 0.05 * exact and abs(linear - exact) <= 0.5 * exact
    assert gaussian_kernel_matrix(X[:3], Y[:3], sigmas).dtype == np.float32


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(estimator="nystrom"), ValueError, r"mmd2: expected estimator in \('exact', 'rff', 'linear'\), got 'nystrom'"),
    (dict(estimator="linear", unbiased=False), ValueError, r"linear-time estimator is unbiased only"),
    (dict(estimator="rff", features=0), ValueError, r"features, the frequencies per bandwidth, an integer >= 1, got 0"),
    (dict(estimator="rff", features=2.5), ValueError, r"an integer >= 1, got 2.5"),
])
def test_bad_estimator_arguments(kwargs, error, match):
    X = np.ones((4, 2))
    with pytest.raises(error, match=match):
        mmd2(X, X + 1, [1.0], **kwargs)


@pytest.mark.parametrize("estimator", ["rff", "linear"])
def test_nan_is_refused(estimator):
    X = np.ones((4, 2))
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match="mmd2: X and Y must be finite"):
        mmd2(X, np.ones((4, 2)), [1.0], estimator=estimator)
