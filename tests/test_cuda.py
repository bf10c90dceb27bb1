"""The CuPy path is the NumPy path run on CuPy arrays: the same results, within float32 rounding."""
import numpy as np
import pytest

from minigan import backend
from minigan.kernels import gaussian_kernel_matrix, mmd2
from minigan.layers import BatchNorm, Conv2D, ConvTranspose2D, Dense, Flatten, LeakyReLU, Reshape, Sequential, Tanh

pytestmark = pytest.mark.cuda


def _model(rng):
    return Sequential(Dense(8, 4 * 7 * 7, bias=False, rng=rng), BatchNorm(4 * 49), LeakyReLU(),
                      Reshape((4, 7, 7)),
                      ConvTranspose2D(4, 3, 5, stride=2, padding=2, output_padding=1, bias=False, rng=rng),
                      BatchNorm(3), LeakyReLU(), Conv2D(3, 2, 5, stride=2, padding=2, rng=rng), Tanh(),
                      Flatten(), Dense(2 * 49, 1, rng=rng))


def test_model_forward_backward_agree_between_numpy_and_cupy():
    cp = backend.get("cupy")
    rng = np.random.default_rng(0)
    cpu, gpu = _model(np.random.default_rng(1)), _model(np.random.default_rng(1)).to(cp)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y_cpu, y_gpu = cpu.forward(x), gpu.forward(cp.asarray(x))
    assert isinstance(y_gpu, cp.ndarray)
    np.testing.assert_allclose(backend.to_host(y_gpu), y_cpu, rtol=1e-4, atol=1e-5)
    dy = rng.standard_normal(y_cpu.shape).astype(np.float32)
    np.testing.assert_allclose(backend.to_host(gpu.backward(cp.asarray(dy))), cpu.backward(dy), rtol=1e-3, atol=1e-5)
    gpu_grads = gpu.grads
    for name, g in cpu.grads.items():
        np.testing.assert_allclose(backend.to_host(gpu_grads[name]), g, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-6), (np.float64, 1e-12)])
def test_gaussian_kernel_and_mmd_on_cupy(dtype, tol):
    cp = backend.get("cupy")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((50, 30)).astype(dtype), rng.standard_normal((40, 30)).astype(dtype)
    s = [2.0, 4.0, 8.0]
    K = gaussian_kernel_matrix(cp.asarray(X), cp.asarray(Y), s)
    ref = gaussian_kernel_matrix(X, Y, s, backend="numpy")
    assert np.max(np.abs(backend.to_host(K) - ref)) / np.max(ref) <= tol
    v, dX = mmd2(cp.asarray(X), cp.asarray(Y), s)
    v0, dX0 = mmd2(X, Y, s, backend="numpy")
    assert abs(float(v) - float(v0)) <= 10 * tol
    np.testing.assert_allclose(backend.to_host(dX), dX0, rtol=1e-3 if dtype == np.float32 else 1e-9, atol=1e-7)


def test_mixed_backends_are_rejected():
    cp = backend.get("cupy")
    with pytest.raises(TypeError, match="two different backends"):
        gaussian_kernel_matrix(np.ones((2, 2)), cp.ones((2, 2)), [1.0])
    with pytest.raises(TypeError, match="move one with .to"):
        Dense(2, 2).forward(cp.ones((1, 2), cp.float32))


@pytest.mark.cuda
@pytest.mark.parametrize("n, c, h, w, k, s, p", [(2, 3, 9, 7, 3, 1, 1), (4, 2, 14, 14, 5, 2, 2), (1, 1, 5, 5, 5, 3, 0)])
def test_im2col_and_col2im_kernels_equal_the_slices(n, c, h, w, k, s, p):
    from minigan.layers import reference_mode
    from minigan.layers.conv import col2im, col2im_sliced, im2col, im2col_sliced
    cp = backend.get("cupy")
    x = cp.asarray(np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32))
    fast = im2col(x, k, s, p)
    with reference_mode():
        slow = im2col(x, k, s, p)
    assert cp.array_equal(fast, slow) and cp.array_equal(fast, im2col_sliced(x, k, s, p, cp.empty_like(fast)))
    np.testing.assert_allclose(backend.to_host(col2im(fast, x.shape, s, p)),
                               backend.to_host(col2im_sliced(fast, x.shape, s, p)), rtol=1e-6, atol=1e-6)


@pytest.mark.cuda
def test_a_dcgan_step_on_the_gpu_equals_numpy():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import compare_backends
    diffs = compare_backends.compare(batch=16)
    assert max(diffs.values()) < 1e-4, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]


@pytest.mark.cuda
def test_training_resume_and_eval_mode_on_the_gpu(tmp_path):
    from minigan import checkpoint, models
    from minigan.trainer import GANTrainer, latest_checkpoint
    data = np.tanh(np.random.default_rng(0).standard_normal((32, 1, 28, 28))).astype(np.float32)

    def make(out):
        return GANTrainer(models.dcgan_generator(16), models.dcgan_discriminator(), nz=16, backend="cupy",
                          out_dir=out, log=lambda *a: None, ema=0.99)
    whole = make(tmp_path / "a")
    whole.fit(data, epochs=2, batch_size=8)
    first = make(tmp_path / "b")
    first.fit(data, epochs=1, batch_size=8)
    resumed = make(tmp_path / "b")
    resumed.restore(latest_checkpoint(tmp_path / "b"))
    resumed.fit(data, epochs=2, batch_size=8)
    for k, v in whole.state()[0].items():
        assert np.array_equal(backend.to_host(v), backend.to_host(resumed.state()[0][k])), k
    images = whole.sample(np.zeros((3, 16), np.float32))  # eval-mode BatchNorm, EMA generator
    assert images.shape == (3, 1, 28, 28) and np.isfinite(images).all()
    arrays, _ = checkpoint.load_run(latest_checkpoint(tmp_path / "a"))
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
