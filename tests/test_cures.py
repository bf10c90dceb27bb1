"""The cures for mode collapse: each layer's and each term's gradient against float64 central
differences on shapes hypothesis draws, their semantics, EMA's closed form, bit-identical
resume with every cure on, clear errors, and a few finite steps of each cure on both GANs."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minigan import losses, models
from minigan.gradcheck import check_double_backward, check_layer, numerical_gradient, rel_error
from minigan.layers import (BatchNorm, Conv2D, ConvTranspose2D, Dense, DiffAugment, Flatten, LeakyReLU,
                            MinibatchDiscrimination, MinibatchStdDev, Pack, Reshape, Sequential, SpectralNorm, Tanh)
from minigan.layers.augment import shift
from minigan.optim import EMA
from minigan.trainer import GANTrainer, latest_checkpoint

from conftest import minibatch_discrimination_case
from test_trainer import stop_at

TOL = 1e-6
seeds = st.integers(0, 2 ** 31 - 1)


def assert_gradients_match(layer, x, tol=TOL, **kw):
    errors = check_layer(layer, x, **kw)
    assert all(v <= tol for v in errors.values()), f"{layer}: {errors}"
    return errors


# ---- layers -------------------------------------------------------------------------------------
def _sn_target(kind, rng, a, b, k):
    if kind == "dense":
        return Dense(a, b, rng=rng), (2, a)
    if kind == "conv":
        return Conv2D(a, b, k, padding=k // 2, rng=rng), (2, a, 4, 4)
    return ConvTranspose2D(a, b, k, stride=2, padding=k // 2, output_padding=1, rng=rng), (2, a, 3, 3)


@settings(max_examples=20)  # 200 power iterations for every probe of every example
@given(st.sampled_from(["dense", "conv", "convT"]), st.integers(1, 4), st.integers(1, 4), st.sampled_from([1, 3]),
       seeds)
def test_spectral_norm_gradient(kind, a, b, k, seed):
    rng = np.random.default_rng(seed)
    inner, shape = _sn_target(kind, rng, a, b, k)
    x = rng.standard_normal(shape)
    warm = SpectralNorm(inner, n_power_iterations=20, rng=seed)
    warm.forward(x.astype(np.float32))  # u, v near the singular vectors: σ = uᵀWv well away from 0
    assert_gradients_match(warm, x, training=False, seed=seed)  # eval: u, v held constant, exact
    # In training each probe runs the power iteration again, so this compares the backward with the
    # derivative of the true σ(W): equal once u and v are the singular vectors (a gap between the
    # top two singular values lets 200 iterations converge). W/σ does not change along W itself,
    # so dW is a difference of near-equal terms: 1e-5 here, the exact check above is at 1e-6.
    sn = SpectralNorm(inner, n_power_iterations=200, rng=seed)
    values = np.linalg.svd(sn._matrix(inner.params["W"]).astype(np.float64), compute_uv=False)
    assume(len(values) == 1 or values[1] < 0.8 * values[0])
    assert_gradients_match(sn, x, tol=1e-5, seed=seed)


@given(st.sampled_from(["dense", "conv", "convT"]), st.integers(2, 5), st.integers(2, 5), seeds)
def test_spectral_norm_divides_by_the_top_singular_value(kind, a, b, seed):
    rng = np.random.default_rng(seed)
    inner, shape = _sn_target(kind, rng, a, b, 3)
    sn = SpectralNorm(inner, rng=seed).to(np, np.float64)
    values = np.linalg.svd(sn._matrix(sn.params["W"]), compute_uv=False)
    assume(len(values) == 1 or values[0] - values[1] > 0.05 * values[0])  # a gap the power iteration can find
    x = rng.standard_normal(shape)
    for _ in range(300):
        sn.forward(x)
    W, W_sn, u, v, sigma = sn.cache
    np.testing.assert_allclose(sigma, values[0], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.svd(sn._matrix(W_sn), compute_uv=False)[0], 1.0, rtol=1e-6)
    assert sn.params["W"] is W and inner.params["W"] is W  # the raw weight stays the parameter
    u_before = sn.buffers["u"].copy()
    sn.forward(x, training=False)
    np.testing.assert_array_equal(sn.buffers["u"], u_before)  # eval does not touch u


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.booleans(), seeds)
def test_minibatch_stddev_gradient(groups, per, c, hw, images, seed):
    n = groups * per
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, hw) if images else (n, c * hw))
    layer = MinibatchStdDev(group_size=per)
    y = layer.forward(x)
    assert y.shape == (n, x.shape[1] + 1, *x.shape[2:])
    assume(n > 1)  # one sample: std 0, sqrt at its kink (1e-8)
    assert_gradients_match(layer, x, seed=seed)


def test_minibatch_stddev_groups_are_strided():
    x = np.arange(8, dtype=np.float64).reshape(8, 1) * np.array([[1.0]])
    y = MinibatchStdDev(group_size=4).forward(x)
    # groups {0, 2, 4, 6} and {1, 3, 5, 7}: the same spread, std of (0, 2, 4, 6) = sqrt(5)
    np.testing.assert_allclose(y[:, 1], np.sqrt(5 + 1e-8))
    y = MinibatchStdDev(group_size=4).forward(np.ones((3, 2)))  # N < group: one group
    np.testing.assert_allclose(y[:, 2], 1e-4)


@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), seeds)
def test_minibatch_discrimination_gradient(n, a, b, c, seed):
    layer, x, diff = minibatch_discrimination_case(n, a, b, c, seed)
    # A pair at L1 distance ~25 has c = e^-25: its gradient is below what central differences resolve.
    assume(n == 1 or diff.sum(axis=3).max() < 8)
    assert_gradients_match(layer, x, seed=seed)


def test_minibatch_discrimination_self_term_has_no_gradient():
    layer = MinibatchDiscrimination(4, 3, 2, rng=0).to(np, np.float64)
    y = layer.forward(np.random.default_rng(0).standard_normal((1, 4)))  # one sample: only j = i
    np.testing.assert_array_equal(y[:, 4:], 1.0)  # exp(−0) per kernel
    dy = np.zeros_like(y)
    dy[:, 4:] = 1.0
    np.testing.assert_array_equal(layer.backward(dy), 0.0)
    np.testing.assert_array_equal(layer.grads["T"], 0.0)


@given(st.integers(1, 4), st.integers(1, 2), st.integers(2, 9), st.integers(2, 9),
       st.sampled_from(["translation", "cutout", "translation,cutout"]), seeds)
def test_diffaugment_gradient_with_its_draw_held(n, c, h, w, policy, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    assert_gradients_match(DiffAugment(policy, translation_ratio=0.25, rng=seed), x, seed=seed)


def test_diffaugment_draw_depends_on_seed_and_shape_only_and_fills_with_minus_one():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 6, 1, 16, 16))
    ya, yb = DiffAugment(rng=5).forward(a), DiffAugment(rng=5).forward(b)
    np.testing.assert_array_equal(ya == -1, yb == -1)  # the same boxes and shifts for other images
    assert (ya == -1).any() and not np.array_equal(ya, DiffAugment(rng=6).forward(a))
    np.testing.assert_array_equal(DiffAugment(rng=5).forward(a, training=False), a)
    # translation alone matches a plain loop
    layer = DiffAugment("translation", rng=3)
    y = layer.forward(a)
    d = layer.cache[0]
    for i in range(6):
        for r in range(16):
            for col in range(16):
                sr, sc = r - d["ty"][i], col - d["tx"][i]
                want = a[i, 0, sr, sc] if 0 <= sr < 16 and 0 <= sc < 16 else -1.0
                assert y[i, 0, r, col] == want
    np.testing.assert_array_equal(shift(a, np.zeros(6, int), np.zeros(6, int), -1.0, 2), a)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.booleans(), seeds)
def test_pack_gradient_and_layout(groups, m, c, images, seed):
    x = np.random.default_rng(seed).standard_normal((groups * m, c, 3, 3) if images else (groups * m, c))
    layer = Pack(m)
    y = layer.forward(x)
    assert y.shape == (groups, m * c, *x.shape[2:])
    np.testing.assert_array_equal(y[0, c * (m - 1):c * m], x[m - 1])  # sample m−1 is the last block of pack 0
    assert_gradients_match(layer, x, seed=seed)


# ---- losses and terms ---------------------------------------------------------------------------
logits = st.integers(1, 8).flatmap(lambda n: st.lists(st.floats(-4, 4), min_size=n, max_size=n))


def away_from(x, points, margin=1e-3):
    return all(abs(v - p) > margin for v in x for p in points)


@given(st.sampled_from(sorted(losses.ADVERSARIAL)), logits, logits)
def test_adversarial_losses_gradients(name, r, f):
    loss = losses.ADVERSARIAL[name]
    assume(away_from(r, [1.0]) and away_from(f, [-1.0]))  # hinge's kinks
    s_r, s_f = np.array(r).reshape(-1, 1), np.array(f).reshape(-1, 1)
    value, d_r, d_f = losses.d_loss(loss, s_r, s_f)
    # atol: central differences of an O(1) loss cannot resolve a gradient entry below ~1e-9
    # (rounding / 2·eps); where the gradient is 0 (LS at s = 1) only that floor is left.
    check = lambda a, n: np.testing.assert_allclose(a, n, rtol=TOL, atol=1e-9)  # noqa: E731
    check(d_r, numerical_gradient(lambda: losses.d_loss(loss, s_r, s_f)[0], s_r))
    check(d_f, numerical_gradient(lambda: losses.d_loss(loss, s_r, s_f)[0], s_f))
    _, g = loss.g(s_f)
    check(g, numerical_gradient(lambda: loss.g(s_f)[0], s_f))


def test_adversarial_losses_match_their_formulas():
    s_r, s_f = np.array([[2.0], [-0.5]]), np.array([[0.5], [-2.0]])
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731
    expect = {"ns": (np.mean(sp(-s_r)) + np.mean(sp(s_f)), np.mean(sp(-s_f))),
              "hinge": (np.mean(np.maximum(0, 1 - s_r)) + np.mean(np.maximum(0, 1 + s_f)), -np.mean(s_f)),
              "ls": (0.5 * np.mean((s_r - 1) ** 2) + 0.5 * np.mean(s_f ** 2), 0.5 * np.mean((s_f - 1) ** 2)),
              "wgan": (-np.mean(s_r) + np.mean(s_f), -np.mean(s_f))}
    for name, (d, g) in expect.items():
        loss = losses.ADVERSARIAL[name]
        np.testing.assert_allclose(losses.d_loss(loss, s_r, s_f)[0], d, rtol=1e-12)
        np.testing.assert_allclose(loss.g(s_f)[0], g, rtol=1e-12)


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 6), seeds)
def test_feature_matching_gradient(n, m, k, seed):
    rng = np.random.default_rng(seed)
    f, r = rng.standard_normal((n, k)), rng.standard_normal((m, k))
    value, grad = losses.feature_matching(f, r)
    np.testing.assert_allclose(value, np.mean((f.mean(0) - r.mean(0)) ** 2))
    assert rel_error(grad, numerical_gradient(lambda: losses.feature_matching(f, r)[0], f)) < TOL


@given(logits, logits, st.floats(-1, 1), st.floats(-1, 1))
def test_lecam_gradients_and_anchors(r, f, a_r, a_f):
    term = losses.LeCam(decay=0.9)
    term.alpha_r, term.alpha_f = np.float64(a_r), np.float64(a_f)
    s_r, s_f = np.array(r), np.array(f)
    assume(away_from(r, [a_f]) and away_from(f, [a_r]))
    np.testing.assert_allclose(term.real(s_r)[0], np.mean(np.maximum(s_r - a_f, 0) ** 2))
    assert rel_error(term.real(s_r)[1], numerical_gradient(lambda: term.real(s_r)[0], s_r)) < TOL
    assert rel_error(term.fake(s_f)[1], numerical_gradient(lambda: term.fake(s_f)[0], s_f)) < TOL
    term.update(s_r, s_f)
    np.testing.assert_allclose(term.alpha_r, 0.9 * a_r + 0.1 * s_r.mean())
    np.testing.assert_allclose(term.alpha_f, 0.9 * a_f + 0.1 * s_f.mean())


# ---- EMA ----------------------------------------------------------------------------------------
def test_ema_is_the_closed_form_of_the_ramped_average():
    model = Sequential(Dense(3, 2, rng=0), BatchNorm(2)).to(np, np.float64)
    ema = EMA(model, decay=0.99)
    rng = np.random.default_rng(0)
    history = [model.layers[0].params["W"].copy()]
    for _ in range(40):
        model.layers[0].params["W"] += rng.standard_normal((3, 2))
        model.layers[1].buffers["running_mean"] = rng.standard_normal(2)
        ema.update()
        history.append(model.layers[0].params["W"].copy())
    # θ_EMA after n updates = Π β_t θ_0 + Σ_t (1 − β_t) Π_{s>t} β_s θ_t
    betas = [ema.beta(t) for t in range(1, 41)]
    expect = np.prod(betas) * history[0]
    for t in range(1, 41):
        expect = expect + (1 - betas[t - 1]) * np.prod(betas[t:]) * history[t]
    np.testing.assert_allclose(ema.model.layers[0].params["W"], expect, rtol=1e-12)
    assert betas[0] < 1e-5 and betas[-1] == min(0.99, 0.5 ** (1 / 2)) and ema.beta(10_000) == 0.99
    np.testing.assert_array_equal(ema.model.layers[1].buffers["running_mean"], model.layers[1].buffers["running_mean"])
    with pytest.raises(ValueError, match=r"EMA: expected 0 <= decay < 1, got 1.5"):
        EMA(model, decay=1.5)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), seeds)
def test_ema_recalibrate_finds_the_average_s_population_statistics(nz, c, h, w, seed):
    # z ~ N(0, I) through a bias-free Dense: output f is z·W_f, of mean 0 and variance ‖W_f‖² exactly
    # (a channel of a map: the mean of its positions' ‖W_f‖²). Measured on the average's weights,
    # not the source's, within six standard errors of the inputs recalibrate draws.
    rng = np.random.default_rng(seed)

    def population_var(W, maps):  # per BatchNorm feature: ‖W_f‖², or its mean over a channel's positions
        per_output = (W ** 2).sum(0)
        return per_output.reshape(c, h * w).mean(1) if maps else per_output

    for maps in (False, True):
        layers = [Dense(nz, c * h * w, bias=False, rng=rng)] + \
            ([Reshape((c, h, w)), BatchNorm(c)] if maps else [BatchNorm(c * h * w)])
        model = Sequential(*layers).to(np, np.float64)
        ema = EMA(model, decay=0.5)
        ema.t = 100  # past the ramp: β = 0.5, the average halfway between the old weights and the new
        model.layers[0].params["W"] *= 3.0  # the source 3 W₀, the average 2 W₀: variances 9/4 apart
        ema.update()
        assert not ema.fresh
        draws = np.random.default_rng(seed + 1)
        ema.recalibrate(lambda n: draws.standard_normal((n, nz)))
        assert ema.fresh
        var = population_var(ema.model.layers[0].params["W"], maps)
        bn = ema.model.layers[-1]
        n = max(512, 16_384 // (h * w if maps else 1))  # inputs recalibrate runs for this BatchNorm
        assert bn.momentum == 0.1  # put back
        assert np.all(np.abs(bn.buffers["running_mean"]) <= 6 * np.sqrt(var / n))
        assert np.all(np.abs(bn.buffers["running_var"] - var) <= 6 * np.sqrt(2 / n) * var)
        var_source = population_var(model.layers[0].params["W"], maps)  # the source's: far off
        assert np.all(np.abs(bn.buffers["running_var"] - var_source) > 6 * np.sqrt(2 / n) * var)


def test_ema_recalibrate_measures_each_batchnorm_after_the_layers_before_it_in_eval_mode():
    # Dense -> BatchNorm -> LeakyReLU -> Reshape -> ConvTranspose2D -> BatchNorm, the second inside a
    # nested Sequential; each BatchNorm's statistics by hand: the mean over its batches of the batch
    # mean and unbiased variance of what the layers before it give in eval mode (the first BatchNorm
    # already measured). A prefix run in train mode, one pass for all, or a fixed momentum fails this.
    rng = np.random.default_rng(3)
    model = Sequential(Dense(3, 2 * 9, bias=False, rng=rng), BatchNorm(2 * 9), LeakyReLU(0.2), Reshape((2, 3, 3)),
                       Sequential(ConvTranspose2D(2, 3, 3, stride=2, padding=1, output_padding=1, rng=rng),
                                  BatchNorm(3), LeakyReLU(0.2))).to(np, np.float64)
    ema = EMA(model, decay=0.5)
    ema.update()
    draws, source = [], np.random.default_rng(4)

    def draw(n):
        z = source.standard_normal((n, 3))
        draws.append(z)
        return z

    ema.recalibrate(draw, values=64, at_least=16, chunk=8)
    layers = EMA.chain(ema.model)
    chunks = [z for z in draws if len(z) == 8]  # the probes that find each input's shape draw 2
    for i, per_input in ((1, 1), (5, 36)):  # the two BatchNorms: one value per input, then 6x6 maps
        batches = -(-max(16, 64 // per_input) // 8)
        means, variances = [], []
        for z in chunks[:batches]:
            x = z
            for layer in layers[:i]:
                x = layer.forward(x, False)
            axes = (0,) if x.ndim == 2 else (0, 2, 3)
            means.append(x.mean(axes))
            variances.append(x.var(axes, ddof=1))
        chunks = chunks[batches:]
        np.testing.assert_allclose(layers[i].buffers["running_mean"], np.mean(means, 0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layers[i].buffers["running_var"], np.mean(variances, 0), rtol=1e-10)
        assert layers[i].momentum == 0.1
    assert not chunks and ema.fresh


def test_ema_recalibrate_that_fails_puts_every_momentum_back():
    model = Sequential(Dense(3, 4, bias=False, rng=0), BatchNorm(4)).to(np, np.float64)
    ema = EMA(model)
    calls = []

    def draw(n):
        calls.append(n)
        if len(calls) > 3:
            raise RuntimeError("out of z")
        return np.ones((n, 3))

    with pytest.raises(RuntimeError, match="out of z"):
        ema.recalibrate(draw)
    assert ema.model.layers[1].momentum == 0.1 and not ema.fresh


def test_ema_refuses_a_generator_whose_batchnorm_it_cannot_measure_before_any_step():
    from minigan.cures import BadOption
    from minigan.layers.tap import Tap
    G = Sequential(Dense(4, 64, rng=0), Tap(BatchNorm(64), "inside"), Tanh(), Reshape((1, 8, 8)))
    with pytest.raises(BadOption, match=r"ema=0.9: EMA: expected BatchNorm layers in a chain of Sequentials, "
                                         r"found one inside Tap"):
        GANTrainer(G, tiny_image_gan()[1], nz=4, ema=0.9)


def test_the_ema_cure_samples_with_statistics_measured_on_the_average():
    G = models.dcgan_generator(8, width=1 / 16)  # the DCGAN's layers, 16-8-4 channels
    D = models.dcgan_discriminator(width=1 / 16)
    t = GANTrainer(G, D, nz=8, log=lambda *a: None, ema=0.9)
    t.fit(np.tanh(np.random.default_rng(0).standard_normal((32, 1, 28, 28))).astype(np.float32),
          epochs=2, batch_size=8)
    cure = next(c for c in t.model.cures if c.name == "ema")
    assert not cure.average.fresh  # updated since anything sampled
    z = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    first = t.sample(z)
    assert cure.average.fresh
    bns = [layer for layer in t.sampler.leaves() if isinstance(layer, BatchNorm)]
    measured = [dict(layer.buffers) for layer in bns]
    for layer, source in zip(bns, (x for x in G.leaves() if isinstance(x, BatchNorm))):
        assert not np.allclose(layer.buffers["running_var"], source.buffers["running_var"])
    cure.average.fresh = False  # measured again: the same z, the same statistics, the same samples
    np.testing.assert_array_equal(t.sample(z), first)
    for layer, before in zip(bns, measured):
        for k in before:
            np.testing.assert_array_equal(layer.buffers[k], before[k])
    state = t.model.state_dict()  # what a checkpoint saves: the measured statistics
    np.testing.assert_array_equal(state["G_ema/1.running_var"], measured[0]["running_var"])


def whole_and_resumed(make, data, tmp_path):
    """Two runs of 2 epochs at batch 8 from make(folder): one whole, one stopped at step 4 and
    resumed from its checkpoint by a new trainer; and the resumed trainer's step_in_epoch at the restore."""
    whole = make(tmp_path / "a")
    whole.fit(data, epochs=2, batch_size=8)
    part = make(tmp_path / "b")
    stop_at(part, 4)
    assert part.fit(data, epochs=2, batch_size=8) == "interrupted"
    resumed = make(tmp_path / "b")
    resumed.restore(latest_checkpoint(tmp_path / "b"))
    at_restore = resumed.step_in_epoch
    resumed.fit(data, epochs=2, batch_size=8)
    return whole, resumed, at_restore


def test_resume_with_ema_of_the_dcgan_generator_is_bit_identical(tmp_path):
    def make(out):
        return GANTrainer(models.dcgan_generator(8, width=1 / 16), models.dcgan_discriminator(width=1 / 16), nz=8,
                          out_dir=out, log=lambda *a: None, ema=0.9)
    data = np.tanh(np.random.default_rng(0).standard_normal((24, 1, 28, 28))).astype(np.float32)
    whole, resumed, _ = whole_and_resumed(make, data, tmp_path)
    (a, _), (b, _) = whole.state(), resumed.state()
    assert "G_ema/1.running_var" in a
    for k in a:
        if k != "history":
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k


# ---- the trainer with every cure ------------------------------------------------------------------
def tiny_image_gan(seed=0, **cures):
    G = models.mlp_generator(4, 64, hidden=16, depth=1, tanh=True, out_shape=(1, 8, 8), seed=seed)
    rng = np.random.default_rng(seed + 1)
    sn = (lambda l: SpectralNorm(l, rng=rng)) if cures.get("sn") else (lambda l: l)
    layers = ([DiffAugment(cures["diffaug"], rng=seed + 2)] if cures.get("diffaug") else []) + \
        ([Pack(cures["pack"])] if cures.get("pack", 1) > 1 else []) + \
        [sn(Conv2D(cures.get("pack", 1), 4, 3, stride=2, padding=1, rng=rng)), LeakyReLU(0.2)] + \
        ([MinibatchStdDev(2)] if cures.get("mbstd") else []) + [Flatten()]
    width = (4 + bool(cures.get("mbstd"))) * 16
    if cures.get("mbdisc"):
        layers.append(MinibatchDiscrimination(width, 3, 2, rng=rng))
        width += 3
    return G, Sequential(*layers, sn(Dense(width, 1, rng=rng)))


EVERY_CURE = dict(loss="hinge", ema=0.99, lecam=0.3, feature_matching=0.5, mmd_weight=0.5, mmd_space="features",
                  d_mmd_weight=0.1, unroll=2, d_steps=2, lr_d=4e-4, lr_g=1e-4, gp="wgan-gp", gp_every=3)
EVERY_LAYER = dict(diffaug="translation,cutout", pack=2, sn=True, mbstd=2, mbdisc=3)


def images(n=48, seed=0):
    return np.tanh(np.random.default_rng(seed).standard_normal((n, 1, 8, 8))).astype(np.float32)


def make(out, **kw):
    G, D = tiny_image_gan(**EVERY_LAYER)
    return GANTrainer(G, D, nz=4, out_dir=out, log_every=2, log=lambda *a: None, **EVERY_LAYER, **EVERY_CURE, **kw)


def test_resume_mid_epoch_with_every_cure_is_bit_identical(tmp_path):
    whole, resumed, at_restore = whole_and_resumed(make, images(), tmp_path)
    assert at_restore == 4
    (a, meta_a), (b, meta_b) = whole.state(), resumed.state()
    assert {k for k in a if k.startswith(("G_ema/", "lecam/"))} and meta_a["layer_rng"]["D"]
    for k in a:
        if k != "history":
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
    assert meta_a["layer_rng"] == meta_b["layer_rng"] and meta_a["rng_state"] == meta_b["rng_state"]


def test_resume_with_other_cures_is_refused_naming_the_difference(tmp_path):
    t = make(tmp_path)
    t.fit(images(), epochs=1, batch_size=8)
    G, D = tiny_image_gan(**EVERY_LAYER)
    other = GANTrainer(G, D, nz=4, out_dir=tmp_path, log=lambda *a: None, **EVERY_LAYER,
                       **dict(EVERY_CURE, loss="ls"))
    with pytest.raises(ValueError, match=r"saved with loss='hinge', this run has loss='ls'"):
        other.restore(latest_checkpoint(tmp_path))
    assert other.step == 0


@pytest.mark.parametrize("make_bad, message", [
    (lambda: Pack(3).forward(np.ones((4, 2), np.float32)), r"Pack\(3\): expected a batch .* multiple of 3, got \(4, 2\)"),
    (lambda: MinibatchStdDev(4).forward(np.ones((6, 2), np.float32)),
     r"multiple of group_size=4 .* got N=6"),
    (lambda: SpectralNorm(Tanh()), r"SpectralNorm: expected a layer with a weight params\['W'\].*got Tanh\(\)"),
    (lambda: GANTrainer(*tiny_image_gan(), nz=4, feature_layer=9),
     r"feature_layer=9: expected the index of one of D's layers 0..2 .*D's layers: 0 Conv2D, 1 LeakyReLU"),
    (lambda: GANTrainer(*tiny_image_gan(), nz=4, lecam=-1), r"lecam=-1: expected a finite weight >= 0"),
    (lambda: GANTrainer(*tiny_image_gan(), nz=4, mmd_weight=float("nan")), r"mmd_weight=nan: expected a finite weight"),
    (lambda: GANTrainer(*tiny_image_gan(), nz=4, ema=1.0), r"ema=1.0: expected a decay in \[0, 1\)"),
    (lambda: GANTrainer(*tiny_image_gan(), nz=4, loss="wasserstein"),
     r"loss='wasserstein': expected one of \['hinge', 'ls', 'ns', 'wgan'\]"),
    (lambda: GANTrainer(*tiny_image_gan(), nz=4, emma=0.9), r"unexpected option 'emma' \(did you mean 'ema'\?\)"),
    (lambda: GANTrainer(*tiny_image_gan(), nz=4, sn=True), r"sn=True but D has no SpectralNorm layer"),
    (lambda: DiffAugment("flip"), r"DiffAugment: expected a policy of translation, cutout"),
    (lambda: losses.LeCam(decay=1), r"LeCam: expected 0 <= decay < 1, got 1"),
])
def test_bad_cure_input_is_a_clear_error(make_bad, message):
    with pytest.raises(ValueError, match=message):
        make_bad()


def test_bad_input_changes_no_state():
    layer = MinibatchStdDev(4)
    with pytest.raises(ValueError, match="multiple of group_size=4"):
        Sequential(Dense(2, 2, rng=0), layer).forward(np.ones((6, 2), np.float32))
    assert layer.cache is None and layer.x_shape is None
    G, D = tiny_image_gan()
    W = G.layers[0].params["W"].copy()
    with pytest.raises(ValueError, match=r"d_steps=0: expected an integer >= 1"):
        GANTrainer(G, D, nz=4, d_steps=0)
    np.testing.assert_array_equal(G.layers[0].params["W"], W)  # not even moved to float32 copies


ALONE = [dict(loss="hinge"), dict(loss="ls"), dict(loss="wgan", sn=True), dict(sn=True),
         dict(diffaug="translation,cutout"), dict(mbstd=4), dict(mbdisc=5), dict(pack=2), dict(ema=0.999),
         dict(lecam=0.3), dict(feature_matching=1.0), dict(mmd_weight=1.0), dict(mmd_weight=1.0, mmd_space="features"),
         dict(d_mmd_weight=0.1), dict(unroll=2), dict(unroll=1, unroll_order=2), dict(d_steps=2, lr_d=4e-4, lr_g=1e-4),
         dict(gp="r1"), dict(gp="r2", gp_every=4), dict(loss="wgan", gp="wgan-gp"), dict(gp="dragan"), dict(madgan=3),
         dict(madgan=2, madgan_sim=0.5), dict(ebgan=True), dict(mrgan=0.2), dict(mrgan=0.2, mrgan_diffusion=True),
         dict(lr_decay=2)]
ALL = dict(loss="hinge", ema=0.999, lecam=0.3, feature_matching=1.0, mmd_weight=1.0, mmd_space="features",
           d_mmd_weight=0.1, unroll=2, d_steps=2, lr_d=4e-4, sn=True, diffaug="translation,cutout", mbstd=4, mbdisc=5,
           pack=2)


@pytest.mark.parametrize("options", ALONE + [ALL], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_each_cure_trains_the_dcgan_on_images_and_moves_every_network(options):
    """On the DCGAN's 28x28 images (tests/test_trainer_gradients.py checks the gradients on the MLP
    GAN): one step with the cure on moves every network and its average, and leaves no NaN."""
    data = np.tanh(np.random.default_rng(0).standard_normal((8, 1, 28, 28))).astype(np.float32)
    G, D, networks = models.build_networks("dcgan", nz=8, options=options)
    t = GANTrainer(G, D, nz=8, log_every=1, log=lambda *a: None, networks=networks, **options)
    before = {k: np.array(v) for k, v in t.model.state_dict().items()}
    t.fit(data, epochs=1, batch_size=8)
    after = t.model.state_dict()
    assert t.step == 1 and all(np.isfinite(v) for v in t.history[0].values())
    for name in t.model.nets:
        moved = [k for k in before if k.startswith(name + "/") and not np.array_equal(before[k], after[k])]
        assert moved, f"{name}'s parameters did not change"
    assert all(np.isfinite(np.asarray(v)).all() for v in after.values() if np.asarray(v).dtype.kind == "f")
    if options.get("ema"):
        assert any(not np.array_equal(before[k], after[k]) for k in before if k.startswith("G_ema/"))


def test_mrgan_leaves_gs_running_statistics_to_g_on_z():
    """MRGAN's pass through G on E's codes changes G's gradients but not its BatchNorm running
    statistics, which describe G on z (eval-mode sampling uses them): after one step they equal
    those of the same step without MRGAN, where only G(z) passes moved them."""
    data = np.tanh(np.random.default_rng(0).standard_normal((8, 1, 28, 28))).astype(np.float32)
    stats = []
    for options in ({}, dict(mrgan=0.2)):
        G, D, networks = models.build_networks("dcgan", nz=8, options=options)
        t = GANTrainer(G, D, nz=8, log=lambda *a: None, networks=networks, **options)
        t.fit(data, epochs=1, batch_size=8)
        stats.append({k: np.array(v) for k, v in G.state_dict().items() if "running" in k})
    assert stats[0].keys() == stats[1].keys() and stats[0]
    for k in stats[0]:
        np.testing.assert_array_equal(stats[0][k], stats[1][k], err_msg=k)


# ---- the layers and terms of MAD-GAN, EBGAN and the Tap ----------------------------------------
@given(st.integers(1, 7), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), seeds)
def test_heads_gradient_and_routing(n, k, a, b, seed):
    from minigan.layers.containers import Heads
    rng = np.random.default_rng(seed)
    heads = Heads(*[Dense(a, b, rng=rng) for _ in range(k)]).to(np, np.float64)
    x = rng.standard_normal((n, a))
    y = heads.forward(x)
    for i in range(n):  # sample i went through head i mod k
        np.testing.assert_allclose(y[i], x[i] @ heads.layers[i % k].params["W"] + heads.layers[i % k].params["b"])
    assert_gradients_match(heads, x, seed=seed)
    assert all(v <= TOL for v in check_double_backward(heads, x, seed=seed).values())


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6), st.booleans(), seeds)
def test_energy_gradient(n, features, hidden, images, seed):
    from minigan.layers.containers import Energy
    rng = np.random.default_rng(seed)
    if images:
        energy = Energy(Sequential(Conv2D(1, 2, 3, padding=1, rng=rng), Tanh(), Conv2D(2, 1, 3, padding=1, rng=rng)))
        x = rng.standard_normal((n, 1, 4, 4))
    else:
        energy = Energy(Sequential(Dense(features, hidden, rng=rng), Tanh(), Dense(hidden, features, rng=rng)))
        x = rng.standard_normal((n, features))
    energy.to(np, np.float64)
    e = energy.forward(x)
    recon = x
    for layer in energy.ae.layers:
        recon = layer.forward(recon)
    np.testing.assert_allclose(e[:, 0], ((recon - x) ** 2).reshape(n, -1).mean(axis=1), rtol=1e-12)
    assert_gradients_match(energy, x, seed=seed)
    assert all(v <= TOL for v in check_double_backward(energy, x, seed=seed).values())


@given(st.integers(2, 6), st.integers(2, 5), st.integers(2, 4), seeds)
def test_cosine_similarity_and_pulling_away_gradients(n, d, k, seed):  # d = 1: cos is ±1, flat
    from minigan.cures.ebgan import pulling_away
    from minigan.cures.madgan import cosine_similarity
    a = np.random.default_rng(seed).standard_normal((n, d))
    u = a / np.linalg.norm(a, axis=1, keepdims=True)
    cos = u @ u.T
    other = (np.arange(n)[:, None] % k) != (np.arange(n)[None, :] % k)
    value, grad = cosine_similarity(a, k)
    assume(other.any())
    np.testing.assert_allclose(value, cos[other].mean(), rtol=1e-9, atol=1e-12)
    assert rel_error(grad, numerical_gradient(lambda: cosine_similarity(a, k)[0], a)) < TOL
    value, grad = pulling_away(a)
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(value, (cos[off] ** 2).mean(), rtol=1e-9, atol=1e-12)
    assert rel_error(grad, numerical_gradient(lambda: pulling_away(a)[0], a)) < TOL


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), seeds)
def test_tap_is_the_identity_plus_what_terms_add(n, a, b, seed):
    from minigan.layers.tap import Tap
    rng = np.random.default_rng(seed)
    inner = Dense(a, b, rng=rng).to(np, np.float64)
    tap = Tap(inner)
    x, dy, extra = rng.standard_normal((n, a)), rng.standard_normal((n, b)), rng.standard_normal((n, b))
    y = tap.forward(x)
    assert tap.value is y and tap.params is inner.params
    tap.add_grad(extra)
    dx = tap.backward(dy)
    np.testing.assert_allclose(dx, (dy + extra) @ inner.params["W"].T)
    np.testing.assert_allclose(tap.grads["W"], x.T @ (dy + extra))
    assert tap.extra is None  # used once
    assert_gradients_match(tap, x, seed=seed)
    for wrapped in (Dense(a, b, rng=seed), Tanh()):  # linear in x, and a backward that depends on x
        assert all(v <= TOL for v in check_double_backward(Tap(wrapped), x, seed=seed).values())
    with pytest.raises(ValueError, match=r"expected a gradient of shape \(%d, %d\)" % (n, b)):
        tap.add_grad(np.zeros((n + 1, b)))


# ---- gradient penalties as a cure ---------------------------------------------------------------
def test_lazy_penalty_every_k_steps_in_a_step_of_its_own_with_gain_k_and_adam_rescaled():
    from minigan import penalties
    G, D, _ = models.build_networks("mlp", nz=2, hidden=8)
    t = GANTrainer(G, D, nz=2, lr=1e-3, gp="r1", gp_weight=2.0, gp_every=4, log=lambda *a: None)
    c = 4 / 5  # D takes 5 Adam steps per 4 batches
    assert t.model.opt["D"].lr == pytest.approx(1e-3 * c) and t.model.opt["D"].betas == pytest.approx((0.5 ** c, 0.999 ** c))
    assert t.model.opt["G"].lr == 1e-3  # G's optimizer is left alone
    gp = next(cure for cure in t.model.cures if cure.name == "gp")
    seen, original = [], penalties.gradient_penalty

    def spy(D, x, kind, weight, **kw):
        seen.append((gp.steps, t.model.opt["D"].t, weight))
        return original(D, x, kind, weight, **kw)
    penalties.gradient_penalty = spy
    try:
        t.fit(np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32), epochs=1, batch_size=8)
    finally:
        penalties.gradient_penalty = original
    # D's steps 0 and 4 of 8, each after that step's own Adam step (t counts both kinds), weight 4 · 2
    assert seen == [(0, 1, 8.0), (4, 6, 8.0)] and gp.steps == 8 and t.model.opt["D"].t == 10
