"""The layer contract (base.Layer's docstring), enforced: a layer that breaks it is named at
its first call; randomness in layers; reference mode equal to the fast path."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan.gradcheck import check_layer
from minigan.layers import (Conv2D, ConvTranspose2D, Dense, Dropout, Elementwise, Layer, Sequential, Tanh,
                            in_reference_mode, reference_mode)
from minigan.optim import Adam

from test_layer_gradients import dcgan_like

REPO = Path(__file__).resolve().parents[1]


class Scale(Elementwise):
    """y = 2x: a minimal layer that keeps the contract, for breaking one rule at a time."""

    def forward(self, x, training=True):
        self.check_input(x)
        return 2 * x

    def backward(self, dy, param_grads=True):
        self.check_grad(dy)
        return 2 * dy


def run(layer, shape=(3, 4)):
    model = Sequential(layer, Tanh())
    y = model.forward(np.ones(shape, np.float32))
    return model.backward(np.ones_like(y))


def test_a_conforming_layer_runs():
    np.testing.assert_allclose(run(Scale()), 2 * (1 - np.tanh(2.0) ** 2), rtol=1e-6)


def test_forward_without_check_input_is_named():
    class NoCheck(Scale):
        def forward(self, x, training=True):
            return 2 * x
    with pytest.raises(RuntimeError, match=r"NoCheck\(\): forward must start with self.check_input\(x\)"):
        run(NoCheck())


def test_missing_output_shape_is_named_not_the_next_layer():
    class NoShape(Layer):
        def forward(self, x, training=True):
            self.check_input(x)
            return x[:, :2].copy()

        def backward(self, dy, param_grads=True):
            return dy
    with pytest.raises(NotImplementedError, match=r"NoShape must define output_shape\(in_shape\)"):
        run(NoShape())


def test_wrong_output_shape_is_named():
    class Halves(Scale):
        def forward(self, x, training=True):
            self.check_input(x)
            return x[:, :2].copy()
    with pytest.raises(ValueError, match=r"Halves\(\): forward returned shape \(3, 2\), but output_shape\(\(3, 4\)\) says \(3, 4\)"):
        run(Halves())


def test_wrong_dx_shape_and_dtype_are_named():
    class BadDx(Scale):
        def backward(self, dy, param_grads=True):
            self.check_grad(dy)
            return dy[:, :1]

    class Float64(Scale):
        def forward(self, x, training=True):
            self.check_input(x)
            return x.astype(np.float64)
    with pytest.raises(ValueError, match=r"BadDx\(\): backward must return dx of the input's shape \(3, 4\), returned \(3, 1\)"):
        run(BadDx())
    with pytest.raises(TypeError, match=r"Float64\(\): forward returned dtype float64 for a float32 input"):
        run(Float64())


def test_a_layer_without_param_grads_or_training_is_refused_at_definition():
    with pytest.raises(TypeError, match=r"Old.backward must take `param_grads`"):
        class Old(Scale):
            def backward(self, dy):
                return dy
    with pytest.raises(TypeError, match=r"Older.forward must take `training`"):
        class Older(Scale):
            def forward(self, x):
                return x


def test_unfilled_grads_are_named_by_sequential_and_by_the_optimizer():
    class Forgets(Dense):
        def backward(self, dy, param_grads=True):
            self.check_grad(dy)
            if param_grads:
                self.grads.pop("b", None)
            return dy @ self.params["W"].T
    with pytest.raises(ValueError, match=r"Dense\(4, 3.*backward\(dy, param_grads=True\) must set grads\['b'\] to an array of shape \(3,\), found none"):
        run(Forgets(4, 3, rng=0))
    layer = Forgets(4, 3, rng=0)
    layer.forward(np.ones((2, 4), np.float32))
    layer.backward(np.ones((2, 3), np.float32))  # called on its own: the optimizer is the next to see it
    W = layer.params["W"].copy()
    with pytest.raises(ValueError, match=r"Adam: expected a gradient of shape \(3,\) for b .*got none \(backward did not set grads\['b'\]\)"):
        Adam(layer, lr=0.1).step()
    np.testing.assert_array_equal(layer.params["W"], W)  # checked before any update


def test_cache_may_be_none_and_backward_before_forward_is_named():
    class CachesNothing(Scale):
        pass
    run(CachesNothing())  # no cache is fine: backward is checked against the recorded shapes
    with pytest.raises(RuntimeError, match=r"Scale\(\): backward called before forward"):
        Scale().backward(np.ones((2, 2), np.float32))


def test_sequential_params_and_grads_are_dicts_by_name():
    model = Sequential(Dense(2, 3, rng=0), Sequential(Dense(3, 1, bias=False, rng=1), Tanh()))
    assert list(model.params) == list(model.grads) == ["0.W", "0.b", "1.0.W"]
    assert model.params["1.0.W"] is model.layers[1].layers[0].params["W"]
    assert all(model.grads[k].shape == v.shape for k, v in model.params.items())


# ---- randomness -----------------------------------------------------------------------------
@given(st.integers(1, 5), st.integers(1, 6), st.floats(0.1, 0.9), st.integers(0, 2 ** 31 - 1))
def test_dropout_gradient_with_its_draw_held(n, f, p, seed):
    layer = Dropout(p, rng=seed)
    x = np.random.default_rng(seed).standard_normal((n, f))
    errors = check_layer(layer, x, seed=seed)
    assert errors["x"] <= 1e-6, errors
    assert layer.hold_draw is False  # check_layer worked on a copy


def test_dropout_draws_from_its_own_generator_and_resumes_from_its_state():
    x = np.ones((8, 10), np.float32)
    a, b = Sequential(Dropout(0.5, rng=3)), Sequential(Dropout(0.5, rng=99))
    a.forward(x)
    b.load_rng_states(a.rng_states())  # what a checkpoint carries
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert not np.array_equal(a.forward(x), a.forward(x))  # a new draw every call
    np.testing.assert_array_equal(a.forward(x, training=False), x)
    with pytest.raises(ValueError, match=r"expected generator states for layers \['0'\], got \[\]"):
        b.load_rng_states({})
    with pytest.raises(ValueError, match=r"Dropout: expected 0 <= p < 1, got 1"):
        Dropout(1)


# ---- reference mode -------------------------------------------------------------------------
def test_reference_mode_is_a_switch_and_restores():
    assert not in_reference_mode()
    with reference_mode():
        assert in_reference_mode()
        with reference_mode(False):
            assert not in_reference_mode()
    assert not in_reference_mode()
    r = subprocess.run([sys.executable, "-c", "from minigan.layers import in_reference_mode as f; print(f())"],
                       env={"MINIGAN_REFERENCE": "1", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert r.stdout.strip() == "True", r.stderr


def test_reference_mode_never_calls_the_compiled_loops(monkeypatch):
    from minigan.kernels import im2col_numba

    def refuse(*a, **k):
        raise AssertionError("the compiled loop ran in reference mode")
    monkeypatch.setattr(im2col_numba, "im2col", refuse)
    monkeypatch.setattr(im2col_numba, "col2im", refuse)
    from minigan.layers import base

    layer = Conv2D(2, 3, 3, stride=2, padding=1, rng=0)
    kept = dict(base._kept.__dict__)
    with reference_mode():
        y = layer.forward(np.ones((2, 2, 5, 5), np.float32))
        layer.backward(np.ones_like(y))
        assert base._kept.__dict__ == kept  # no kept buffers either
    with pytest.raises(AssertionError, match="compiled loop ran"):
        layer.forward(np.ones((2, 2, 5, 5), np.float32))


@settings(max_examples=10, derandomize=True)
@given(st.integers(2, 6), st.integers(2, 5), st.integers(1, 3), st.booleans(), st.integers(0, 2 ** 31 - 1))
def test_reference_and_fast_paths_agree_on_the_dcgan(n, nz, ch, training, seed):
    """Outputs and every gradient, float32 as trained, through G and then D (the G step)."""
    rng = np.random.default_rng(seed)
    G, D = dcgan_like(nz, ch, rng)
    model = Sequential(*G.layers, *D.layers).to(np, np.float32)
    z = rng.standard_normal((n, nz)).astype(np.float32)
    dy = rng.standard_normal((n, 1)).astype(np.float32)
    results = []
    for on in (False, True, False):  # fast, reference, fast again (kept buffers reused)
        with reference_mode(on):
            y = model.forward(z, training)
            dz = model.backward(dy)
        results.append((y, dz, {k: g.copy() for k, g in model.grads.items()}))
    for y, dz, grads in results[1:]:
        np.testing.assert_allclose(y, results[0][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dz, results[0][1], rtol=1e-4, atol=1e-6)
        for k, g in grads.items():
            np.testing.assert_allclose(g, results[0][2][k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_conv_transpose_reference_matches_fast_bit_for_bit_in_float64():
    rng = np.random.default_rng(0)
    layer = ConvTranspose2D(3, 2, 5, stride=2, padding=2, output_padding=1, rng=0).to(np, np.float64)
    x = rng.standard_normal((2, 3, 4, 4))
    fast = layer.forward(x)
    with reference_mode():
        ref = layer.forward(x)
    np.testing.assert_allclose(ref, fast, rtol=1e-13, atol=1e-15)


# ---- the write-your-own-layer page ----------------------------------------------------------
def test_the_own_layer_page_runs_as_written(tmp_path):
    page = (REPO / "docs" / "own_layer.md").read_text()
    code = re.search(r"<!-- own-layer -->\s*```python\n(.*?)```", page, re.S).group(1)
    (tmp_path / "my_layers.py").write_text(code)
    command = re.search(r"```bash\n(python -m minigan.gradcheck my_layers.py:\S+ --input[\d ]+)\n```", page).group(1)
    r = subprocess.run(command.split(), cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "all gradients within 1e-06" in r.stdout and "(full, 144 entries)" in r.stdout, \
        r.stdout + r.stderr
    namespace = {}
    exec(compile(code, "my_layers.py", "exec"), namespace)
    pool = namespace["AvgPool2D"](2)
    model = Sequential(Conv2D(1, 8, 3, padding=1, rng=0), pool, Tanh())
    y = model.forward(np.ones((2, 1, 28, 28), np.float32))
    assert y.shape == (2, 8, 14, 14) and model.backward(np.ones_like(y)).shape == (2, 1, 28, 28)
    # the page's GAN: its discriminator, trained by the trainer for an epoch of 64-image batches
    gan_code = re.search(r"<!-- own-layer-gan -->\s*```python\n(.*?)```", page, re.S).group(1)
    sys.path.insert(0, str(tmp_path))
    try:
        scope = {}
        exec(compile(gan_code, "own_layer_gan.py", "exec"), scope)
        images = np.tanh(np.random.default_rng(0).standard_normal((128, 1, 28, 28))).astype(np.float32)
        trainer = scope["train_with_avgpool"](images, tmp_path / "run")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_layers", None)
    assert trainer.step == 2 and (tmp_path / "run" / "samples_epoch001.png").is_file()
    assert any(type(layer).__name__ == "AvgPool2D" for layer in trainer.D.layers)
