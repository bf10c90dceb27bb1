"""Gradient penalties (minigan.penalties): each kind's value against its formula with the input
gradient taken by central differences, its gradient with respect to D's parameters (and to x)
against central differences of the penalty itself, on small D's hypothesis draws (BatchNorm,
SpectralNorm, a DCGAN-shaped D with every cure that is a layer); D's state left as it was; the
CuPy path through tests/fakecupy.py with no device reads; clear errors."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minigan import backend
from minigan.gradcheck import numerical_gradient
from minigan.layers import (BatchNorm, Conv2D, Dense, DiffAugment, Dropout, Flatten, LeakyReLU, Sequential,
                            SpectralNorm, Tanh, reference_mode)
from minigan.penalties import KINDS, dragan_perturb, gradient_penalty, interpolates

from test_double_backward import small_discriminator

seeds = st.integers(0, 2 ** 31 - 1)
kinds = st.sampled_from(KINDS)


def assert_close(a, n, value, rtol=1e-6):
    """rtol of the norms, plus what central differences (step 1e-6) of a penalty of size |value| cannot
    resolve, a few ulps of it over 2·eps an entry: all that is left where the gradient is 0 (a bias
    before BatchNorm)."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    atol = 16 * np.finfo(np.float64).eps * max(abs(float(value)), 1.0) / 2e-6 * np.sqrt(a.size)
    assert np.linalg.norm(a - n) <= rtol * max(np.linalg.norm(a), np.linalg.norm(n)) + atol, \
        f"analytic {a.ravel()[:6]}, numeric {n.ravel()[:6]}"


def small_d(rng, conv, bn, sn, act, f=3, h=4):
    """A small D on (N, f) vectors or (N, 1, 4, 4) images; BatchNorm with gamma != 1, SpectralNorm
    settled (the penalty's forward runs one power iteration from the kept u, v, as training does)."""
    wrap = (lambda layer: SpectralNorm(layer, rng=rng)) if sn else (lambda layer: layer)
    first = [wrap(Conv2D(1, 2, 3, padding=1, rng=rng)), *([BatchNorm(2)] if bn else []), act, Flatten()] if conv \
        else [wrap(Dense(f, h, rng=rng)), *([BatchNorm(h)] if bn else []), act]
    D = Sequential(*first, wrap(Dense(2 * 16 if conv else h, 1, rng=rng))).to(np, np.float64)
    for layer in D.leaves():
        if isinstance(layer, BatchNorm):
            layer.params["gamma"] = rng.uniform(0.5, 1.5, layer.num_features) * rng.choice([-1, 1], layer.num_features)
            layer.params["beta"] = rng.standard_normal(layer.num_features) * 0.3
        if isinstance(layer, SpectralNorm):
            layer.settle()
    return D, rng.standard_normal((4, 1, 4, 4) if conv else (4, f))


def input_gradient(D, x):
    """g = ∇ₓ Σ D(x) by central differences (not through D's backward)."""
    x = x.copy()
    return numerical_gradient(lambda: D.forward(x).sum(), x)


def sn_has_a_gap(D):
    for layer in D.leaves():
        if isinstance(layer, SpectralNorm):
            values = np.linalg.svd(layer._matrix(layer.params["W"]), compute_uv=False)
            if len(values) > 1 and values[1] > 0.9 * values[0]:
                return False
    return True


@settings(max_examples=12)
@given(kinds, st.booleans(), st.booleans(), st.booleans(), st.sampled_from(["tanh", "leaky"]),
       st.floats(0.1, 10.0), seeds)
def test_value_and_gradients_against_central_differences(kind, conv, bn, sn, act, weight, seed):
    rng = np.random.default_rng(seed)
    D, x = small_d(rng, conv, bn, sn, Tanh() if act == "tanh" else LeakyReLU(0.2))
    assume(sn_has_a_gap(D))
    if act == "leaky":  # pre-activations off the kink, where the input gradient jumps
        kink = next(i for i, layer in enumerate(D.layers) if isinstance(layer, LeakyReLU))
        assume(np.abs(Sequential(*D.layers[:kink]).forward(x)).min() > 1e-4)
    value, grads, dx = gradient_penalty(D, x, kind, weight, input_grad=True)
    assert value.shape == () and isinstance(value, np.ndarray)

    g = input_gradient(D, x).reshape(len(x), -1)
    norms = np.linalg.norm(g, axis=1)
    expect = weight / 2 * np.mean(norms ** 2) if kind in ("r1", "r2") else weight * np.mean((norms - 1) ** 2)
    np.testing.assert_allclose(value, expect, rtol=1e-6)

    def penalty():
        return float(gradient_penalty(D, x, kind, weight)[0])
    assert list(grads) == list(D.grads)
    for name, layer, k in D.named_parameters():
        assert_close(grads[name], numerical_gradient(penalty, layer.params[k]), value)
    assert_close(dx, numerical_gradient(penalty, x), value)


@settings(max_examples=6, derandomize=True)
@given(kinds, st.integers(1, 2), st.booleans(), seeds)
def test_on_a_dcgan_shaped_discriminator_with_every_layer_cure(kind, ch, sn, seed):
    """BatchNorm (or SpectralNorm), MinibatchStdDev, PacGAN and DiffAugment in one D: directional
    derivatives of the penalty along random directions of each parameter."""
    rng = np.random.default_rng(seed)
    D = small_discriminator(rng, ch, sn=sn, mbstd=4, pack=2, diffaug="translation,cutout").to(np, np.float64)
    for layer in D.leaves():
        if isinstance(layer, SpectralNorm):
            layer.settle()
        layer.hold_draw = True  # one DiffAugment draw for every probe
    x = rng.standard_normal((8, 1, 12, 12))
    value, grads = gradient_penalty(D, x, kind, 1.0)
    for name, layer, k in D.named_parameters():
        p = layer.params[k]
        d = rng.standard_normal(p.shape)
        d /= np.linalg.norm(d)

        def along(t, p=p, d=d):
            old = p.copy()
            p[...] = old + t * d
            v = float(gradient_penalty(D, x, kind, 1.0)[0])
            p[...] = old
            return v
        assert_close(np.sum(grads[name] * d), (along(1e-6) - along(-1e-6)) / 2e-6, value)


def test_r1_is_zero_for_a_constant_d_and_wgan_gp_is_weight_there():
    D = Sequential(Dense(3, 1, rng=0)).to(np, np.float64)
    D.layers[0].params["W"][...] = 0
    x = np.ones((2, 3))
    value, grads = gradient_penalty(D, x, "r1", 10.0)
    assert value == 0 and all(np.all(g == 0) for g in grads.values())
    value, grads = gradient_penalty(D, x, "wgan-gp", 10.0)
    assert value == 10.0 and np.all(grads["0.W"] == 0)  # ‖g‖ = 0: (0 − 1)², and no direction to move in


def test_d_is_left_as_it_was():
    rng = np.random.default_rng(0)
    D = Sequential(DiffAugment("translation", rng=1), Conv2D(1, 2, 3, rng=rng), BatchNorm(2), LeakyReLU(0.2),
                   Flatten(), Dropout(0.3, rng=2), SpectralNorm(Dense(8, 1, rng=rng), rng=3)).to(np, np.float64)
    x = rng.standard_normal((4, 1, 4, 4))
    D.forward(x)
    D.backward(np.ones((4, 1)))
    state = {k: v.copy() for k, v in D.state_dict().items()}
    rngs, grads = D.rng_states(), D.grads
    gradient_penalty(D, x, "dragan", 10.0)
    assert D.rng_states() == rngs and all(D.grads[k] is g for k, g in grads.items())
    for k, v in D.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert D.kept_dys is None  # the second-order pass let go of what it kept


@pytest.mark.parametrize("make, match", [
    (lambda D, x: gradient_penalty(D, x, "r3", 1.0), r"gradient_penalty: expected kind to be one of r1, r2, "
                                                    r"wgan-gp, dragan, got 'r3'"),
    (lambda D, x: gradient_penalty(D, x, "r1", -1.0), r"gradient_penalty: expected a finite weight >= 0, got -1.0"),
    (lambda D, x: gradient_penalty(D, x[:, :2], "r1", 1.0), r"BatchNorm\(3, .*\): expected 3 features on axis 1, "
                                                           r"got shape \(4, 2\)"),
    (lambda D, x: gradient_penalty(D.layers[0], x, "r1", 1.0), r"gradient_penalty: expected D to be a Sequential, "
                                                              r"got BatchNorm"),
    (lambda D, x: interpolates(x, x[:2], 0), r"interpolates: expected real and fake batches of one shape"),
    (lambda D, x: dragan_perturb(x, None), r"dragan_perturb: expected rng, a numpy Generator or an int seed"),
])
def test_bad_input_is_refused_before_any_change(make, match):
    D = Sequential(BatchNorm(3), Dense(3, 1, rng=0)).to(np, np.float64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    before = {k: v.copy() for k, v in D.state_dict().items()}
    with pytest.raises((ValueError, TypeError), match=match):
        make(D, x)
    for k, v in D.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_the_helpers_draw_from_the_generator_they_are_given():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((2, 5, 1, 2, 2))
    a, b = interpolates(real, fake, np.random.default_rng(7)), interpolates(real, fake, 7)
    np.testing.assert_array_equal(a, b)
    eps = np.random.default_rng(7).random(5)
    np.testing.assert_allclose(a, eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake)
    p = dragan_perturb(real, np.random.default_rng(3))
    np.testing.assert_allclose(p, real + 0.5 * real.std() * np.random.default_rng(3).random(real.shape))


@pytest.mark.parametrize("kind", KINDS)
def test_on_the_cupy_double_with_no_device_reads(fake, kind):
    rng = np.random.default_rng(0)
    make = lambda: small_discriminator(np.random.default_rng(1), 2, mbstd=4).to(np, np.float32)  # noqa: E731
    cpu, gpu = make(), make().to(backend.get("cupy"))
    real, fakes = rng.standard_normal((2, 4, 1, 12, 12)).astype(np.float32)
    x_cpu = {"r1": real, "r2": fakes, "wgan-gp": interpolates(real, fakes, 5), "dragan": dragan_perturb(real, 5)}[kind]
    real_d, fakes_d = fake.asarray(real), fake.asarray(fakes)
    fake.counts.reset()
    x_gpu = {"r1": real_d, "r2": fakes_d, "wgan-gp": interpolates(real_d, fakes_d, 5),
             "dragan": dragan_perturb(real_d, 5)}[kind]
    value, grads, dx = gradient_penalty(gpu, x_gpu, kind, 10.0, input_grad=True)
    assert fake.counts.reads == 0, "the penalty read from the device"
    assert backend.is_cupy(value) and value.shape == () and all(backend.is_cupy(g) for g in grads.values())
    with reference_mode():  # the slices the double runs too (the compiled float32 loops cost a compile)
        v_cpu, g_cpu, dx_cpu = gradient_penalty(cpu, x_cpu, kind, 10.0, input_grad=True)
    np.testing.assert_allclose(backend.to_host(value), v_cpu, rtol=1e-4)
    np.testing.assert_allclose(backend.to_host(dx), dx_cpu, rtol=1e-3, atol=1e-6)
    for k, g in g_cpu.items():
        np.testing.assert_allclose(backend.to_host(grads[k]), g, rtol=2e-3, atol=1e-6, err_msg=k)
