"""BatchNorm with PyTorch's semantics: batch statistics in training, running ones in eval."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigan.layers import BatchNorm
from minigan.layers.base import feature_sum


@given(st.integers(2, 5), st.integers(1, 4), st.booleans(), st.integers(0, 2 ** 31 - 1))
def test_running_statistics_follow_pytorch(n, c, spatial, seed):
    rng = np.random.default_rng(seed)
    momentum = float(rng.uniform(0.05, 0.9))
    bn = BatchNorm(c, momentum=momentum).to(np, np.float64)
    bn.params["gamma"] = rng.uniform(0.5, 2, c)
    bn.params["beta"] = rng.standard_normal(c)
    rm, rv = np.zeros(c), np.ones(c)
    shape = (n, c, 3, 2) if spatial else (n, c)
    axes = (0, 2, 3) if spatial else (0,)
    for _ in range(4):
        x = rng.standard_normal(shape) * 3 + 1
        y = bn.forward(x, training=True)
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        m = x.size // c
        rm = (1 - momentum) * rm + momentum * mu
        rv = (1 - momentum) * rv + momentum * var * m / (m - 1)  # unbiased, as PyTorch
        b = (slice(None),) + (None,) * (len(shape) - 2)
        expect = bn.params["gamma"][b] * (x - mu[b]) / np.sqrt(var[b] + bn.eps) + bn.params["beta"][b]
        np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], rm, rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], rv, rtol=1e-12)

    x = rng.standard_normal(shape)
    y_eval = bn.forward(x, training=False)
    b = (slice(None),) + (None,) * (len(shape) - 2)
    expect = bn.params["gamma"][b] * (x - rm[b]) / np.sqrt(rv[b] + bn.eps) + bn.params["beta"][b]
    np.testing.assert_allclose(y_eval, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], rm, rtol=1e-12)  # eval leaves them alone


def test_training_output_is_normalised():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 3, 4, 4)) * 5 + 2).astype(np.float32)
    y = BatchNorm(3).forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


def test_one_value_per_feature_cannot_train_but_can_eval():
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match="more than 1 value per feature"):
        bn.forward(np.ones((1, 3), np.float32), training=True)
    assert bn.forward(np.ones((1, 3), np.float32), training=False).shape == (1, 3)


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError, match="takes 2 positional arguments but 3 were given"):
        BatchNorm(128, 0.8)  # the classic bug: this would silently set eps = 0.8


@given(st.lists(st.integers(1, 5), min_size=2, max_size=5), st.booleans(), st.integers(0, 2 ** 31 - 1))
def test_feature_sum_is_a_sum_over_every_axis_but_1(shape, product, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2,) + tuple(shape))
    axes = tuple(i for i in range(len(shape)) if i != 1)
    expect = (a * b).sum(axis=axes) if product else a.sum(axis=axes)
    got = feature_sum(a, b) if product else feature_sum(a)
    assert got.shape == (shape[1],)
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)
    assert feature_sum(a.astype(np.float32)).dtype == np.float32
