"""The compiled LeakyReLU and BatchNorm passes (kernels/elementwise_numba.py, NumPy's fast path)
against the NumPy expressions that define them (reference mode), on shapes hypothesis draws,
split over 1-3 worker threads or not at all."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan.kernels import elementwise_numba, threads
from minigan.layers import BatchNorm, LeakyReLU, ReLU, reference_mode

cases = dict(n=st.integers(2, 6), c=st.integers(1, 5), h=st.integers(1, 8), w=st.integers(1, 8),
             workers=st.integers(1, 3), split=st.booleans(), transposed=st.booleans(),
             dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 31 - 1))


def both_paths(layer, x, dy, training, workers, split):
    """(y, dx, grads) on the fast path (split over `workers` threads when `split`), then in reference mode."""
    results = []
    for reference in (False, True):
        with pytest.MonkeyPatch.context() as patch, reference_mode(reference):
            patch.setattr(threads, "workers", lambda: workers)
            patch.setattr(threads, "_pool", {})  # a pool made here (of `workers` threads) is dropped after
            if split:
                patch.setattr(elementwise_numba, "PARALLEL_MIN_BYTES", 0)
            y = layer.forward(x, training)
            dx = layer.backward(dy)
            results.append((y, dx, {k: g.copy() for k, g in layer.grads.items()}))
    return results


def close(fast, ref, dtype):
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    (y, dx, grads), (y_ref, dx_ref, grads_ref) = fast, ref
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    for k in grads_ref:
        np.testing.assert_allclose(grads[k], grads_ref[k], err_msg=k, **tol)


@settings(max_examples=40)
@given(training=st.booleans(), **cases)
def test_batchnorm_fast_path_equals_the_numpy_expressions(n, c, h, w, workers, split, transposed, dtype, seed,
                                                          training):
    rng = np.random.default_rng(seed)
    layer = BatchNorm(c, eps=1e-3).to(np, dtype)
    layer.params["gamma"] = rng.uniform(0.5, 2, c).astype(dtype)
    layer.params["beta"] = rng.standard_normal(c).astype(dtype)
    layer.buffers["running_mean"] = rng.standard_normal(c).astype(dtype)
    layer.buffers["running_var"] = rng.uniform(0.5, 2, c).astype(dtype)
    x = (rng.standard_normal((n, c, h, w)) * 3 + rng.standard_normal((1, c, 1, 1))).astype(dtype)
    if transposed:  # not C-contiguous: the loops must copy, not read past it
        x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    dy = rng.standard_normal(x.shape).astype(dtype)
    running = {k: v.copy() for k, v in layer.buffers.items()}
    fast, ref = both_paths(layer, x, dy, training, workers, split)
    close(fast, ref, dtype)
    if not training:
        for k, v in running.items():
            np.testing.assert_array_equal(layer.buffers[k], v)


@settings(max_examples=40)
@given(slope=st.sampled_from([0.2, 0.01, 0.0]), **cases)
def test_leaky_relu_fast_path_equals_the_numpy_expressions(n, c, h, w, workers, split, transposed, dtype, seed,
                                                           slope):
    rng = np.random.default_rng(seed)
    layer = LeakyReLU(slope) if slope else ReLU()
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    x[0, 0, 0, 0] = 0  # the kink: the slope there is a (x > 0 is false)
    if transposed:
        x = x.transpose(3, 2, 1, 0)
    dy = rng.standard_normal(x.shape).astype(dtype)
    fast, ref = both_paths(layer, x, dy, True, workers, split)
    close(fast, ref, dtype)
    np.testing.assert_array_equal(fast[0], ref[0])  # one comparison and one product: bit for bit
    np.testing.assert_array_equal(fast[1], ref[1])


@pytest.mark.parametrize("layer", [BatchNorm(3), LeakyReLU(0.2)], ids=["batchnorm", "leaky_relu"])
def test_a_nan_goes_through_the_fast_path(layer):
    """The sums may be added in any order (fastmath's reassociation), never with NaN assumed away:
    a NaN must reach the loss, where the trainer stops the run."""
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    x[1, 2, 3, 4] = np.nan
    y = layer.forward(x)
    assert np.isnan(y).any()
    dy = np.ones_like(y)
    dy[0, 0, 0, 0] = np.nan
    assert np.isnan(layer.backward(dy)).any()


def test_worker_threads_run_every_task_in_order_and_raise_the_first_error():
    assert threads.run(lambda t: t * 2, []) == []
    assert threads.run(lambda t: t * 2, [3]) == [6]
    assert threads.run(lambda t: t * 2, list(range(7))) == [0, 2, 4, 6, 8, 10, 12]

    def work(t):
        if t >= 2:
            raise ValueError(f"task {t}")
        return t
    with pytest.raises(ValueError, match="task 2"):
        threads.run(work, [0, 1, 2, 3])


@pytest.mark.parametrize("value, expected", [("3", 3), (" 1 ", 1), ("0", None), ("two", None), ("-1", None)])
def test_minigan_threads_sets_the_worker_count_or_is_refused_in_one_line(monkeypatch, value, expected):
    monkeypatch.setenv("MINIGAN_THREADS", value)
    threads.workers.cache_clear()
    try:
        if expected is None:
            with pytest.raises(ValueError, match=f"MINIGAN_THREADS: expected a whole number of threads, 1 or more, got '{value.strip()}'"):
                threads.workers()
        else:
            assert threads.workers() == expected
    finally:
        monkeypatch.undo()
        threads.workers.cache_clear()
