"""Every layer's backward_backward against float64 central differences of its backward, on shapes
hypothesis draws (gradcheck.check_double_backward: Q = <backward(dy), G>, differentiated in dy,
x and every parameter); Sequential's second-order pass, nested and on DCGAN-shaped
discriminators; the layer contract for the second derivative."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minigan import models
from minigan.gradcheck import check_double_backward
from minigan.layers import (BatchNorm, Conv2D, ConvTranspose2D, Dense, DiffAugment, Dropout, Elementwise, Flatten,
                            LeakyReLU, MinibatchDiscrimination, MinibatchStdDev, Pack, ReLU, Reshape, Sequential,
                            Sigmoid, SpectralNorm, Tanh, reference_mode)
from minigan.layers.conv import conv_output_size, conv_transpose_output_size

from conftest import minibatch_discrimination_case

TOL = 1e-6
seeds = st.integers(0, 2 ** 31 - 1)
few = settings(max_examples=15)


def assert_double_matches(layer, x, tol=TOL, **kw):
    kw.setdefault("max_full_size", 32)  # larger arrays: 6 random directions (quicker, as telling)
    errors = check_double_backward(layer, x, **kw)
    assert set(errors) == {"dy", "x"} | {name for name, _, _ in layer.named_parameters()}
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"{layer}: relative errors above {tol}: {errors}"


def away_from_kink(x, margin=0.05):
    return np.where(x >= 0, x + margin, x - margin)


# ---- the layers ---------------------------------------------------------------------------------
@few
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.booleans(), seeds)
def test_dense(n, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    assert_double_matches(Dense(fin, fout, bias=bias, rng=rng), rng.standard_normal((n, fin)), seed=seed)


@few
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7),
       st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.booleans(), seeds)
def test_conv2d(n, cin, cout, h, w, k, s, p, bias, seed):
    assume(min(h, w) + 2 * p >= k)
    rng = np.random.default_rng(seed)
    layer = Conv2D(cin, cout, k, stride=s, padding=p, bias=bias, rng=rng)
    x = rng.standard_normal((n, cin, h, w))
    assert layer.output_shape(x.shape) == (n, cout, conv_output_size(h, k, s, p), conv_output_size(w, k, s, p))
    with reference_mode():  # the strided slices: the fast path compiles a loop per (stride, width) drawn
        assert_double_matches(layer, x, seed=seed)


@few
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5),
       st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.data(), st.booleans(), seeds)
def test_conv_transpose2d(n, cin, cout, h, w, k, s, p, data, bias, seed):
    op = data.draw(st.integers(0, s - 1), label="output_padding")
    assume(min(conv_transpose_output_size(v, k, s, p, op) for v in (h, w)) >= 1)
    rng = np.random.default_rng(seed)
    layer = ConvTranspose2D(cin, cout, k, stride=s, padding=p, output_padding=op, bias=bias, rng=rng)
    with reference_mode():
        assert_double_matches(layer, rng.standard_normal((n, cin, h, w)), seed=seed)


@few
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans(), st.booleans(),
       seeds)
def test_batchnorm(n, c, h, w, spatial, training, seed):
    # 2 values per feature: x̂ = ±1 whatever x is, backward is 0 and so are its derivatives.
    assume(not training or (n * h * w if spatial else n) >= 3)
    rng = np.random.default_rng(seed)
    bn = BatchNorm(c, eps=float(rng.uniform(1e-5, 1e-2)))
    bn.params["gamma"] = rng.uniform(0.5, 2.0, c) * rng.choice([-1, 1], c)  # not 1: gamma = 1 hides bugs
    bn.params["beta"] = rng.standard_normal(c)
    bn.buffers["running_mean"], bn.buffers["running_var"] = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    x = rng.standard_normal((n, c, h, w) if spatial else (n, c)) * 2 + 0.5
    assert_double_matches(bn, x, training=training, seed=seed)


@few
@given(st.sampled_from([LeakyReLU(0.2), ReLU(), Tanh(), Sigmoid(), Dropout(0.3, rng=1)]),
       st.lists(st.integers(1, 4), min_size=2, max_size=4), seeds)
def test_elementwise(layer, shape, seed):
    x = away_from_kink(np.clip(np.random.default_rng(seed).standard_normal(shape) * 2, -4, 4))
    assert_double_matches(layer, x, seed=seed)


@few
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), seeds)
def test_shape_layers_and_pack(n, a, b, c, seed):
    rng = np.random.default_rng(seed)
    assert_double_matches(Sequential(Reshape((a, b, c)), Flatten()), rng.standard_normal((n, a * b * c)), seed=seed)
    assert_double_matches(Pack(2), rng.standard_normal((2 * n, a, b, c)), seed=seed)


def _sn_target(kind, rng, a, b):
    if kind == "dense":
        return Dense(a, b, rng=rng), (2, a)
    if kind == "conv":
        return Conv2D(a, b, 3, padding=1, rng=rng), (2, a, 3, 3)
    return ConvTranspose2D(a, b, 3, stride=2, padding=1, output_padding=1, rng=rng), (2, a, 2, 2)


@few
@given(st.sampled_from(["dense", "conv", "convT"]), st.integers(1, 3), st.integers(1, 3), st.booleans(), seeds)
def test_spectral_norm(kind, a, b, training, seed):
    """Eval: u, v held, the backward's own definition. Training: gradcheck settles u, v (the probes
    iterate again), so this is the derivative of the true σ(W); a gap between the top two
    singular values lets the iteration settle."""
    rng = np.random.default_rng(seed)
    inner, shape = _sn_target(kind, rng, a, b)
    sn = SpectralNorm(inner, rng=seed)
    values = np.linalg.svd(sn._matrix(inner.params["W"]).astype(np.float64), compute_uv=False)
    assume(not training or len(values) == 1 or values[1] < 0.9 * values[0])
    sn.forward(rng.standard_normal(shape).astype(np.float32))  # u, v off their random start
    with reference_mode():
        assert_double_matches(sn, rng.standard_normal(shape), training=training, seed=seed)


@few
@given(st.integers(1, 3), st.integers(2, 4), st.integers(1, 3), st.integers(1, 3), st.booleans(), seeds)
def test_minibatch_stddev(groups, per, c, hw, images, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((groups * per, c, hw, hw) if images else (groups * per, c * hw))
    assert_double_matches(MinibatchStdDev(group_size=per), x, seed=seed)


@few
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), seeds)
def test_minibatch_discrimination(n, a, b, c, seed):
    layer, x, diff = minibatch_discrimination_case(n, a, b, c, seed)
    # |M_i − M_j| at 0 is sign's kink; at L1 distance ~25 c = e^-25 is below what differences resolve.
    assume(n == 1 or (diff[~np.eye(n, dtype=bool)].min() > 1e-3 and diff.sum(axis=3).max() < 8))
    assert_double_matches(layer, x, seed=seed)


@few
@given(st.integers(1, 3), st.integers(1, 2), st.integers(2, 7), st.integers(2, 7),
       st.sampled_from(["translation", "cutout", "translation,cutout"]), st.booleans(), seeds)
def test_diffaugment(n, c, h, w, policy, training, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    assert_double_matches(DiffAugment(policy, translation_ratio=0.25, rng=seed), x, training=training, seed=seed)


def test_a_layer_without_a_second_derivative_refuses_in_one_line_before_any_change():
    class Cube(Elementwise):
        def forward(self, x, training=True):
            self.check_input(x)
            self.cache = x
            return x ** 3

        def backward(self, dy, param_grads=True):
            self.check_grad(dy)
            return 3 * self.cache ** 2 * dy

    model = Sequential(Dense(3, 4, rng=0), Cube(), Dense(4, 1, rng=1))
    x = np.ones((2, 3), np.float32)
    dy = np.ones((2, 1), np.float32)
    model.forward(x)
    model.backward(dy, create_graph=True)
    grads = model.grads
    with pytest.raises(NotImplementedError, match=r"^Cube\(\): cannot be differentiated twice: it defines no "
                                                  r"backward_backward\(dy, g\) \(docs/backprop.md shows how\)$"):
        model.backward_backward(dy, np.ones_like(x))
    assert all(model.grads[k] is g for k, g in grads.items())  # the layer above it was not reached


# ---- Sequential ---------------------------------------------------------------------------------
@few
@given(st.integers(3, 5), st.integers(1, 4), seeds)
def test_nested_sequentials(n, f, seed):
    rng = np.random.default_rng(seed)
    bn = BatchNorm(f + 1)
    bn.params["gamma"] = rng.uniform(0.5, 1.5, f + 1)
    inner = Sequential(Dense(f, f + 1, rng=rng), bn, Sequential(Tanh(), Dense(f + 1, 3, rng=rng)))
    model = Sequential(Tanh(), inner, Sigmoid(), Dense(3, 2, rng=rng))
    assert_double_matches(model, rng.standard_normal((n, f)), seed=seed)


def small_discriminator(rng, ch, sn=False, mbstd=0, pack=1, diffaug=None, mbdisc=0):
    """dcgan_discriminator's shape on 12x12 images with ch channels (the real one is tested below)."""
    wrap = (lambda layer: SpectralNorm(layer, rng=rng)) if sn else (lambda layer: layer)
    layers = [DiffAugment(diffaug, translation_ratio=0.25, rng=int(rng.integers(2 ** 31)))] if diffaug else []
    layers += [Pack(pack)] if pack > 1 else []
    layers += [wrap(Conv2D(pack, ch, 5, stride=2, padding=2, rng=rng)), LeakyReLU(0.2),
               wrap(Conv2D(ch, 2 * ch, 5, stride=2, padding=2, bias=sn, rng=rng))]
    layers += [] if sn else [BatchNorm(2 * ch)]
    layers += [LeakyReLU(0.2)] + ([MinibatchStdDev(mbstd)] if mbstd else []) + [Flatten()]
    width = (2 * ch + (1 if mbstd else 0)) * 9
    layers += [MinibatchDiscrimination(width, mbdisc, 3, rng=rng)] if mbdisc else []
    D = Sequential(*layers, wrap(Dense(width + mbdisc, 1, rng=rng)))
    for bn in (layer for layer in D.layers if isinstance(layer, BatchNorm)):
        bn.params["gamma"] = rng.uniform(0.5, 1.5, bn.num_features)
        bn.params["beta"] = rng.standard_normal(bn.num_features) * 0.3
    return D


# Hidden pre-activations cannot be kept off LeakyReLU's kink, where backward jumps: derandomize
# keeps CI deterministic (hypothesis still chooses the examples, the same ones every run).
@settings(max_examples=8, derandomize=True)
@given(st.integers(1, 3), st.booleans(), st.sampled_from([0, 4]), st.sampled_from([1, 2]),
       st.sampled_from([None, "translation,cutout"]), st.sampled_from([0, 3]), seeds)
def test_dcgan_shaped_discriminators_end_to_end(ch, sn, mbstd, pack, diffaug, mbdisc, seed):
    rng = np.random.default_rng(seed)
    D = small_discriminator(rng, ch, sn=sn, mbstd=mbstd, pack=pack, diffaug=diffaug, mbdisc=mbdisc)
    assert_double_matches(D, rng.standard_normal((4 * pack, 1, 12, 12)), full=False, seed=seed)


@pytest.mark.parametrize("cures", [{}, dict(sn=True, mbstd=4, pack=2, diffaug="translation,cutout")],
                         ids=["plain", "sn-mbstd-pack-diffaug"])
def test_the_dcgan_discriminator(cures):
    D = models.dcgan_discriminator(seed=3, **cures)
    x = np.random.default_rng(3).standard_normal((4 * cures.get("pack", 1), 1, 28, 28))
    assert_double_matches(D, x, full=False, n_directions=1, seed=3)  # 28x28: one direction per array


def test_create_graph_keeps_references_and_a_plain_backward_keeps_nothing():
    rng = np.random.default_rng(0)
    model = Sequential(Dense(3, 4, rng=0), Sequential(Tanh(), Dense(4, 2, rng=1)))
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    model.to(np, np.float64).forward(x)
    model.backward(dy, create_graph=True)
    inner = model.layers[1]
    assert model.kept_dys[1] is dy and inner.kept_dys[1] is dy  # the very arrays, no copies
    assert inner.kept_dys[0].shape == (5, 4) and model.kept_dys[0].shape == (5, 4)
    model.backward_backward(dy, np.ones_like(x))
    model.backward(dy)
    assert model.kept_dys is None and inner.kept_dys is None
    with pytest.raises(RuntimeError, match=r"Sequential.backward_backward\(dy, g\): expected the dy of the last "
                                           r"backward\(dy, create_graph=True\).*none was kept"):
        model.backward_backward(dy, np.ones_like(x))
    model.backward(dy, create_graph=True)
    with pytest.raises(RuntimeError, match="got another array"):
        model.backward_backward(dy.copy(), np.ones_like(x))
    with pytest.raises(ValueError, match=r"expected g, the adjoint of dx, of the input's shape \(5, 3\), got \(5, 2\)"):
        model.backward_backward(dy, dy)
    model.release_graph()
    assert model.kept_dys is None and inner.kept_dys is None


def test_param_grads_false_leaves_grads_and_gives_the_same_adjoints():
    rng = np.random.default_rng(1)
    model = small_discriminator(rng, 2, mbstd=4).to(np, np.float64)
    x, g = rng.standard_normal((4, 1, 12, 12)), rng.standard_normal((4, 1, 12, 12))
    dy = np.ones((4, 1))
    model.forward(x)
    model.backward(dy, create_graph=True)
    g_dy, g_x = model.backward_backward(dy, g)
    with_grads = {k: v.copy() for k, v in model.grads.items()}
    model.backward(dy, create_graph=True)
    before = model.grads
    g_dy2, g_x2 = model.backward_backward(dy, g, param_grads=False)
    assert all(model.grads[k] is v for k, v in before.items())
    np.testing.assert_array_equal(g_dy, g_dy2)
    np.testing.assert_array_equal(g_x, g_x2)
    assert any(np.abs(v).max() > 0 for v in with_grads.values())


def test_a_wrong_second_derivative_shape_is_named():
    class Halves(Dense):
        def backward_backward(self, dy, g, param_grads=True):
            g_dy, _ = super().backward_backward(dy, g, param_grads)
            return g_dy[:, :1], None
    model = Sequential(Halves(3, 2, rng=0), Tanh())
    x = np.ones((2, 3), np.float32)
    y = model.forward(x)
    dy = np.ones_like(y)
    model.backward(dy, create_graph=True)
    with pytest.raises(ValueError, match=r"Dense\(3, 2, bias=True\): backward_backward must return g_dy of the "
                                         r"output's shape \(2, 2\), returned \(2, 1\)"):
        model.backward_backward(dy, np.ones_like(x))
