"""The CuPy path on every CI run, through tests/fakecupy.py (NumPy underneath, CuPy's type rules):
zero device reads inside a training step, one step equal to NumPy's, bit-identical resume, a
ceiling on operations per step, the demo's paths, and an honest availability check. A guard for
the xp discipline, not a claim that the GPU works (that is benchmarks/gpu_check.sh on a GPU)."""
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import fakecupy
from minigan import backend, checkpoint, cures, models
from minigan.layers import reference_mode
from minigan.trainer import GANTrainer, latest_checkpoint

from test_trainer import stop_at

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def test_the_double_keeps_cupys_rules(fake):
    a = fake.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(TypeError, match="a NumPy array mixed into a CuPy operation"):
        a + np.ones(3, np.float32)
    assert isinstance(np.exp(a), fake.ndarray) and isinstance(a.sum(), fake.ndarray)  # dispatched, stays put
    assert backend.is_cupy(a) and backend.xp_of(a) is fake
    reads = fake.counts.reads
    assert float(a.sum()) == 15.0 and fake.counts.reads == reads + 1


def tiny(seed=0, **kw):
    G, D, networks = models.build_networks("dcgan", nz=16, seed=seed, options={k: v for k, v in kw.items()
                                                                              if k in cures.options()})
    return GANTrainer(G, D, nz=16, log=lambda *a: None, log_every=2, seed=seed, networks=networks, **kw)


@pytest.mark.parametrize("options", [{}, dict(mmd_weight=1.0, mmd_sigmas=[4.0, 8.0, 16.0]),
                                     dict(ema=0.99, loss="hinge", lecam=0.3, feature_matching=1.0,
                                          diffaug="translation,cutout"),
                                     dict(sn=True, mbstd=4, mbdisc=5, pack=2),
                                     dict(madgan=3, madgan_sim=0.5), dict(ebgan=True),
                                     dict(mrgan=0.2, mrgan_diffusion=True), dict(unroll=1, unroll_order=2),
                                     dict(loss="wgan", gp="wgan-gp"), dict(gp="r1", gp_every=1)],
                         ids=["plain", "pixel-mmd", "ema-hinge-lecam-fm-diffaug", "sn-mbstd-mbdisc-pack", "madgan-sim",
                              "ebgan", "mrgan-diffusion", "unroll-second-order", "wgan-gp", "r1"])
def test_a_step_reads_nothing_from_the_device_and_equals_numpy(fake, options):
    cpu, gpu = tiny(backend="numpy", **options), tiny(backend="cupy", **options)
    rng = np.random.default_rng(0)
    real = np.tanh(rng.standard_normal((8, 1, 28, 28))).astype(np.float32)
    z = rng.standard_normal((8, 16)).astype(np.float32)
    with reference_mode():  # the NumPy expressions CuPy runs (the fast path's loops sum in other orders,
        stats_cpu = cpu.train_step(real, z)  # which MRGAN's diffusion step magnifies to 1e-3; test_elementwise.py)
    real_d, z_d = fake.asarray(real), fake.asarray(z)
    fake.counts.reset()
    stats_gpu = gpu.train_step(real_d, z_d)
    assert fake.counts.reads == 0, "train_step read from the device"
    ceiling = OPS_CEILING["plain" if not options else "more passes" if {"mrgan", "unroll", "gp"} & set(options) else "cured"]
    assert fake.counts.ops <= ceiling, f"{fake.counts.ops} operations in one step, more than {ceiling}"
    np.testing.assert_allclose(backend.to_host(stats_gpu), stats_cpu, rtol=1e-4, atol=1e-6)
    for model in cpu.model.nets:
        ours, theirs = cpu.model.nets[model].grads, gpu.model.nets[model].grads
        for k, g in ours.items():
            # The second-order unroll's central differences scale rounding by 1/ε, and a penalty's
            # gradient has entries that are 0 but for rounding, which D's first Adam step turns into
            # sizeable moves: the two backends' sums, rounded differently, differ by more there.
            atol = 1e-3 * float(np.abs(g).max()) if options.get("unroll_order") == 2 or "gp" in options else 1e-6
            np.testing.assert_allclose(backend.to_host(theirs[k]), g, rtol=2e-3, atol=atol, err_msg=f"{model}/{k}")


# Operations (kernel launches on a GPU, and the double counts views too) in one step, measured
# with the im2col/col2im kernels: 945 plain, 1,048 with pixel MMD, about 1,200 with the cures
# above. The slices made it ~1,400. MRGAN with its diffusion D2 runs G, D and E once more and
# trains D2: 2,092; the second-order unroll of one step, a D update, two D gradients and a G
# backward more: 2,524. (The convolutions' batch spans, one span on CuPy, added about 100 to
# each: views of the span, and the im2col that Conv2D's backward runs again.)
OPS_CEILING = {"plain": 1000, "cured": 1350, "more passes": 2800}


def test_resume_is_bit_identical_on_the_double(fake, tmp_path):
    data = np.tanh(np.random.default_rng(0).standard_normal((24, 1, 28, 28))).astype(np.float32)
    whole = tiny(out_dir=tmp_path / "a", backend="cupy", ema=0.99, diffaug="translation")
    whole.fit(data, epochs=2, batch_size=8)
    part = tiny(out_dir=tmp_path / "b", backend="cupy", ema=0.99, diffaug="translation")
    stop_at(part, 2)
    assert part.fit(data, epochs=2, batch_size=8) == "interrupted"
    resumed = tiny(out_dir=tmp_path / "b", backend="cupy", ema=0.99, diffaug="translation")
    resumed.restore(latest_checkpoint(tmp_path / "b"))
    resumed.fit(data, epochs=2, batch_size=8)
    a, b = whole.state()[0], resumed.state()[0]
    for k in a:
        if k != "history":
            assert np.array_equal(backend.to_host(a[k]), backend.to_host(b[k])), k


def _demo():
    spec = importlib.util.spec_from_file_location("mnist_gan_demo", REPO / "demos" / "mnist_gan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demos_paths_on_the_double(fake, tmp_path, capsys):
    demo = _demo()
    out = tmp_path / "run"
    assert demo.main(["--dry-run", "--backend", "cupy", "--out", str(out)]) == 0
    assert demo.main(["--dry-run", "--backend", "cupy", "--out", str(out), "--resume", "--epochs", "2",
                      "--eval-every", "1", "--mmd-weight", "1"]) != 0  # other cures than the saved run's: refused
    assert demo.main(["--dry-run", "--backend", "cupy", "--out", str(out), "--resume", "--epochs", "2",
                      "--eval-every", "1"]) == 0
    (ckpt,) = checkpoint.listed(out / "checkpoints")[-1:]
    assert demo.main(["--backend", "cupy", "--sample", str(ckpt), "--npy", "--n-samples", "600",
                      "--out", str(out)]) == 0
    samples = np.load(out / "samples.npy")
    assert samples.shape == (600, 1, 28, 28) and samples.dtype == np.float32 and np.abs(samples).max() <= 1
    scored = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert scored == [2]  # the dry run asked for it, after its last epoch
    printed = capsys.readouterr()
    assert "backend cupy" in printed.out and "saved with mmd_weight=0.0, this run has mmd_weight=1.0" in printed.err


def test_the_one_step_comparison_script_on_the_double(fake):
    import compare_backends
    diffs = compare_backends.compare(batch=8)
    assert len(diffs) > 20 and max(diffs.values()) < 1e-4, max(diffs.items(), key=lambda kv: kv[1])


def test_availability_is_honest_about_a_missing_toolkit(monkeypatch, tmp_path):
    def no_nvrtc(*a, **k):
        raise RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: cannot open shared object file")
    broken = types.ModuleType("cupy")
    broken.cuda = fakecupy.cuda
    broken.ElementwiseKernel = no_nvrtc
    monkeypatch.setitem(sys.modules, "cupy", broken)
    backend._check_cupy.cache_clear()
    ok, reason = backend.cupy_available()
    assert not ok and "cannot compile a kernel or run cuBLAS (CuPy failed to load libnvrtc.so.12" in reason
    assert "pip install 'cupy-cuda12x[ctk]'" in reason
    with pytest.raises(SystemExit) as exit_:
        _demo().parse_args(["--backend", "cupy", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    backend._check_cupy.cache_clear()
