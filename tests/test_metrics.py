"""Metric code against cases with known answers."""
import numpy as np
import pytest

from minigan import metrics
from minigan.gradcheck import numerical_gradient, rel_error
from minigan.losses import softmax_cross_entropy


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    a, b = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # diagonal covariances
    assert metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # a full covariance against itself, rotated mean: only the mean term is left
    Q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    C = Q @ np.diag(a) @ Q.T
    assert metrics.frechet_distance(mu1, C, mu2, C) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-8)


def test_fid_and_kid_on_identical_and_shifted_gaussians():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4000, 8))
    assert abs(metrics.fid(X, X)) < 1e-8
    same, spread = metrics.kid(X, X, subsets=20)
    assert abs(same) < 0.01 and abs(same) < 4 * spread  # subsets differ, so only ≈ 0
    shift = np.full(8, 0.5)  # N(0, I) vs N(shift, I): FID = ‖shift‖² = 2
    Y = rng.standard_normal((4000, 8)) + shift
    assert metrics.fid(X, Y) == pytest.approx(2.0, abs=0.1)
    kid_mean, kid_std = metrics.kid(X, Y, subsets=20, subset_size=500)
    Z = rng.standard_normal((4000, 8))
    assert kid_mean > 10 * abs(metrics.kid(X, Z, subsets=20, subset_size=500)[0])


def test_inception_score_and_class_histogram_for_known_generators():
    one_class = np.tile(np.eye(10)[3], (100, 1)) * 0.99 + 0.001
    assert metrics.inception_score(one_class) == pytest.approx(1.0, abs=1e-6)
    hist = metrics.class_histogram(one_class)
    assert hist[3] == 1 and metrics.kl_to_uniform(hist) == pytest.approx(np.log(10))
    every_class = np.eye(10)[np.arange(1000) % 10]
    assert metrics.inception_score(every_class) == pytest.approx(10.0, rel=1e-6)
    assert metrics.kl_to_uniform(metrics.class_histogram(every_class)) == pytest.approx(0.0, abs=1e-12)


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    loss, grad = softmax_cross_entropy(logits, labels)
    ref = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(6), labels])
    assert loss == pytest.approx(ref, rel=1e-12)
    assert rel_error(grad, numerical_gradient(lambda: softmax_cross_entropy(logits, labels)[0], logits)) < 1e-8
    assert np.isfinite(softmax_cross_entropy(np.array([[1e4, -1e4]]), np.array([1]))[0])


@pytest.mark.parametrize("name, modes", [("ring", 8), ("grid", 25)])
def test_mixture_scorer_on_the_true_mixture_and_on_one_mode(name, modes):
    true = metrics.mixture_score(metrics.sample_mixture(name, 2500, 0), name)
    assert true["modes"] == modes and true["high_quality"] >= 0.98 and true["reverse_kl"] < 0.05
    means, sigma = metrics.mixture(name)
    one = means[2] + sigma * np.random.default_rng(1).standard_normal((2500, 2))
    collapsed = metrics.mixture_score(one, name)
    assert collapsed["modes"] == 1 and collapsed["reverse_kl"] == pytest.approx(np.log(modes))
    far = metrics.mixture_score(np.full((10, 2), 10.0), name)
    assert far["modes"] == 0 and far["high_quality"] == 0


def test_ring_has_eight_distinct_modes():
    means, _ = metrics.mixture("ring")
    d = np.linalg.norm(means[:, None] - means[None], axis=2) + np.eye(8)
    assert d.min() > 0.7  # linspace(0, 2π, 8) would put two means on top of each other
