"""The compiled LeakyReLU, BatchNorm and Adam passes (kernels/elementwise_numba.py, NumPy's fast
path) against the NumPy expressions that define them (reference mode), on shapes hypothesis
draws, split over 1-3 worker threads or not at all."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan import optim
from minigan.kernels import elementwise_numba, threads
from minigan.layers import BatchNorm, Dense, LeakyReLU, ReLU, Sequential, reference_mode

cases = dict(n=st.integers(2, 6), c=st.integers(1, 5), h=st.integers(1, 8), w=st.integers(1, 8),
             workers=st.integers(1, 3), split=st.booleans(), transposed=st.booleans(),
             dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 31 - 1))


def workers_and_split(patch, workers, split):
    """`workers` worker threads; with `split`, arrays of any size split over them."""
    patch.setattr(threads, "workers", lambda: workers)
    patch.setattr(threads, "_pool", {})  # a pool made here (of `workers` threads) is dropped after
    if split:
        patch.setattr(elementwise_numba, "PARALLEL_MIN_BYTES", 0)


def both_paths(layer, x, dy, training, workers, split):
    """(y, dx, grads) on the fast path (split over `workers` threads when `split`), then in reference mode."""
    results = []
    for reference in (False, True):
        with pytest.MonkeyPatch.context() as patch, reference_mode(reference):
            workers_and_split(patch, workers, split)
            y = layer.forward(x, training)
            dx = layer.backward(dy)
            results.append((y, dx, {k: g.copy() for k, g in layer.grads.items()}))
    return results


def close(fast, ref, dtype, sum_scale=1.0):
    """Equal to rounding. A parameter gradient is a sum over the batch whose terms may cancel
    (BatchNorm's dgamma = Σ dy·x̂): its float32 rounding is relative to the sum of the terms' sizes,
    `sum_scale`, not to the result (the fast path adds in float64, the reference in float32)."""
    (y, dx, grads), (y_ref, dx_ref, grads_ref) = fast, ref
    assert y.dtype == dx.dtype == dtype
    for a, b, what, scale in ([(y, y_ref, "y", 1.0), (dx, dx_ref, "dx", 1.0)]
                              + [(grads[k], grads_ref[k], k, max(1.0, sum_scale)) for k in grads_ref]):
        if dtype == np.float64:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * scale, err_msg=what)
        else:
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6 * scale, err_msg=what)


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
    x64 = x.astype(np.float64)
    mu, var = ((x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))) if training else
               (running["running_mean"].astype(np.float64), running["running_var"].astype(np.float64)))
    x_hat = (x64 - mu[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3)
    sum_scale = float((np.abs(dy) * (1 + np.abs(x_hat))).sum(axis=(0, 2, 3)).max())  # Σ|dy| + Σ|dy·x̂|
    fast, ref = both_paths(layer, x, dy, training, workers, split)
    close(fast, ref, dtype, sum_scale)
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


@settings(max_examples=30)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=3), steps=st.integers(1, 4),
       betas=st.sampled_from([(0.9, 0.999), (0.5, 0.999), (0.0, 0.9)]), workers=st.integers(1, 3),
       split=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 31 - 1))
def test_adam_fast_path_equals_the_numpy_expressions_bit_for_bit(sizes, steps, betas, workers, split, dtype, seed):
    """The same operations in the same order, no fused multiply-adds: the compiled update rounds
    as the NumPy expressions do, over several steps and gradients from 1e-6 to 10."""
    rng = np.random.default_rng(seed)
    models = [Sequential(*[Dense(a, b, rng=seed) for a, b in zip([3] + sizes, sizes)]).to(np, dtype) for _ in range(2)]
    opts = [optim.Adam(m, lr=2e-3, betas=betas) for m in models]
    compiled_calls = []
    for _ in range(steps):
        grads = [(rng.standard_normal(l.params[k].shape) * 10.0 ** rng.integers(-6, 2)).astype(dtype)
                 for _, l, k in opts[0].slots]
        for opt, reference in zip(opts, (False, True)):
            for (_, layer, k), g in zip(opt.slots, grads):
                layer.grads[k] = g.copy()
            with pytest.MonkeyPatch.context() as patch, reference_mode(reference):
                workers_and_split(patch, workers, split)
                adam = elementwise_numba.adam
                patch.setattr(elementwise_numba, "adam", lambda *a: compiled_calls.append(reference) or adam(*a))
                opt.step()
    assert compiled_calls == [False] * (steps * len(opts[0].slots))  # every update of the fast side, none of the other
    fast, ref = models[0].params, models[1].params
    for k in ref:
        assert fast[k].dtype == dtype
        np.testing.assert_array_equal(fast[k], ref[k], err_msg=k)
    for k in opts[1].state:
        np.testing.assert_array_equal(opts[0].state[k], opts[1].state[k], err_msg=k)


def test_every_dcgan_parameter_takes_adams_compiled_pass():
    """The compiled update needs C-contiguous gradients of the parameter's dtype; a layer whose
    gradient is a transposed view would fall back to the thirteen NumPy passes without a word."""
    from minigan import models
    from minigan.trainer import GANTrainer
    G, D, networks = models.build_networks("dcgan", nz=8, width=0.25)
    trainer = GANTrainer(G, D, nz=8, log=lambda *a: None, networks=networks)
    rng = np.random.default_rng(0)
    with reference_mode(False):
        trainer.train_step(rng.uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32),
                           rng.standard_normal((4, 8)).astype(np.float32))
        opts = trainer.model.opt.values()
        slots = [(opt, name, layer, k) for opt in opts for name, layer, k in opt.slots]
        assert len(slots) >= 10
        for opt, name, layer, k in slots:
            m, v = opt.state["m/" + name], opt.state["v/" + name]
            assert optim.compiled(layer.params[k], layer.grads[k], m, v), f"{name} ({layer}): not compiled-ready"


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
