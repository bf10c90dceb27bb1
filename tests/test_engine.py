"""Losses, optimizers, initialisers, state dicts and the backend module."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minigan import backend, init
from minigan.gradcheck import numerical_gradient, rel_error
from minigan.layers import BatchNorm, Dense, LeakyReLU, Sequential
from minigan.losses import bce_with_logits, mse
from minigan.optim import SGD, Adam


@given(arrays(np.float64, st.integers(1, 20), elements=st.floats(-1e4, 1e4)), st.integers(0, 2 ** 31 - 1))
def test_bce_with_logits_is_exact_and_finite(x, seed):
    t = np.random.default_rng(seed).uniform(0, 1, x.shape)
    loss, grad = bce_with_logits(x, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # against the textbook formula where it does not overflow, in extended precision
    xl, tl = x.astype(np.longdouble), t.astype(np.longdouble)
    ref = np.mean(tl * np.logaddexp(0, -xl) + (1 - tl) * np.logaddexp(0, xl))  # −t log σ(x) − (1−t) log(1−σ(x))
    np.testing.assert_allclose(loss, float(ref), rtol=1e-12, atol=1e-300)
    sig = 1 / (1 + np.exp(-xl))
    np.testing.assert_allclose(grad, ((sig - tl) / x.size).astype(np.float64), rtol=1e-9, atol=1e-18)


def test_bce_with_logits_gradient_numerically():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal(7) * 3, rng.uniform(0, 1, 7)
    _, grad = bce_with_logits(x, t)
    assert rel_error(grad, numerical_gradient(lambda: bce_with_logits(x, t)[0], x)) < 1e-8
    with pytest.raises(ValueError, match=r"bce_with_logits: expected targets of shape \(7,\)"):
        bce_with_logits(x, np.ones(3))


def test_mse():
    rng = np.random.default_rng(1)
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss, grad = mse(p, t)
    np.testing.assert_allclose(loss, np.mean((p - t) ** 2))
    assert rel_error(grad, numerical_gradient(lambda: mse(p, t)[0], p)) < 1e-8


def _adam_reference(p, grads, lr, b1, b2, eps):
    m = v = 0
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


def test_adam_matches_the_paper_and_state_round_trips():
    rng = np.random.default_rng(0)
    layer = Dense(3, 2, rng=0).to(np, np.float64)
    p0 = layer.params["W"].copy()
    grads = [rng.standard_normal(p0.shape) for _ in range(5)]
    opt = Adam(layer, lr=0.01, betas=(0.5, 0.99), eps=1e-8)
    for g in grads[:3]:
        layer.grads["W"], layer.grads["b"] = g, np.zeros(2)
        opt.step()
    state = {k: v.copy() for k, v in opt.state_dict().items()}
    opt2 = Adam(layer, lr=0.01, betas=(0.5, 0.99), eps=1e-8)
    opt2.load_state_dict(state)  # resume from the saved moments
    for g in grads[3:]:
        layer.grads["W"], layer.grads["b"] = g, np.zeros(2)
        opt2.step()
    np.testing.assert_allclose(layer.params["W"], _adam_reference(p0, grads, 0.01, 0.5, 0.99, 1e-8), rtol=1e-12)
    assert opt2.t == 5


def test_sgd_momentum_and_float32_stays_float32():
    layer = Dense(2, 2, rng=0)
    opt = SGD(layer, lr=0.1, momentum=0.9)
    W0 = layer.params["W"].copy()
    g = np.ones((2, 2), np.float32)
    for _ in range(2):
        layer.grads["W"], layer.grads["b"] = g, np.zeros(2, np.float32)
        opt.step()
    np.testing.assert_allclose(layer.params["W"], W0 - 0.1 * (1 + 1.9) * g, rtol=1e-6)
    assert layer.params["W"].dtype == np.float32 and opt.state["v/W"].dtype == np.float32
    with pytest.raises(ValueError, match="SGD: expected lr > 0"):
        SGD(layer, lr=0)


def test_optimizer_follows_a_replaced_parameter():
    """Parameters are read from layer.params at every step, so a loaded array is the one updated."""
    layer = Dense(2, 2, rng=0)
    opt = SGD(layer, lr=1.0)
    layer.params["W"] = np.zeros((2, 2), np.float32)
    layer.grads["W"], layer.grads["b"] = np.ones((2, 2), np.float32), np.zeros(2, np.float32)
    opt.step()
    np.testing.assert_array_equal(layer.params["W"], -1)


def test_state_dict_round_trip_includes_running_statistics():
    a = Sequential(Dense(3, 4, rng=1), BatchNorm(4), LeakyReLU())
    b = Sequential(Dense(3, 4, rng=2), BatchNorm(4), LeakyReLU())
    a.forward(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    assert set(a.state_dict()) == {"0.W", "0.b", "1.gamma", "1.beta", "1.running_mean", "1.running_var"}
    b.load_state_dict({k: v.copy() for k, v in a.state_dict().items()})
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(a.forward(x, training=False), b.forward(x, training=False))


def test_initialisers_are_seeded():
    assert np.array_equal(init.dcgan_normal((3, 3), 7), init.dcgan_normal((3, 3), 7))
    assert abs(init.dcgan_normal((200, 200), 0).std() - 0.02) < 1e-3
    assert abs(init.he_normal((400, 400), 400, 0).std() - np.sqrt(2 / 400)) < 1e-3
    g = init.glorot_uniform((300, 100), 300, 100, 0)
    assert np.abs(g).max() <= np.sqrt(6 / 400)
    model = init.init_dcgan(Sequential(Dense(50, 60, rng=0), BatchNorm(60)), rng=3)
    assert abs(model.layers[0].params["W"].std() - 0.02) < 2e-3
    assert abs(model.layers[1].params["gamma"].mean() - 1) < 0.01
    assert np.array_equal(Dense(4, 4, rng=5).params["W"], Dense(4, 4, rng=5).params["W"])
    with pytest.raises(TypeError, match="rng: expected an int seed"):
        init.as_generator("seed")


def test_backend_picks_and_reports():
    assert backend.get("numpy") is np
    assert backend.xp_of(np.ones(2), None) is np
    with pytest.raises(ValueError, match=r"backend: expected 'numpy' or 'cupy', got 'torch'"):
        backend.get("torch")
    ok, reason = backend.cupy_available()
    if not ok:
        with pytest.raises(RuntimeError, match=r"CuPy is not installed: install the CuPy extra|no CUDA device"):
            backend.get("cupy")
        assert reason
