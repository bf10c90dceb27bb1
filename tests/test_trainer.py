"""The trainer on tiny models: it learns, resumes bit-identically, and never loses work."""
import numpy as np
import pytest

from minigan import checkpoint, models
from minigan.layers import BatchNorm, Dense, LeakyReLU, Sequential
from minigan.trainer import GANTrainer, TrainingDiverged, latest_checkpoint


def tiny_gan(seed=0):
    rng = np.random.default_rng(seed)
    G = Sequential(Dense(4, 16, bias=False, rng=rng), BatchNorm(16), LeakyReLU(0.2), Dense(16, 2, rng=rng))
    D = Sequential(Dense(2, 16, rng=rng), LeakyReLU(0.2), Dense(16, 16, bias=False, rng=rng), BatchNorm(16),
                   LeakyReLU(0.2), Dense(16, 1, rng=rng))
    return G, D


def ring(n=256, seed=0):
    rng = np.random.default_rng(seed)
    angle = rng.integers(0, 8, n) * (2 * np.pi / 8)
    return (np.stack([np.cos(angle), np.sin(angle)], 1) * 2 + rng.normal(0, 0.05, (n, 2))).astype(np.float32)


def make(tmp_path=None, seed=0, **kw):
    G, D = tiny_gan(seed)
    return GANTrainer(G, D, nz=4, seed=seed, out_dir=tmp_path, log_every=4, log=lambda *a: None, **kw)


class StopAt:
    """A callback that asks the run to stop (as Ctrl-C does) once it has taken `step` steps."""

    def __init__(self, step):
        self.step = step

    def after_step(self, trainer):
        if trainer.step == self.step:
            trainer.request_stop("SIGINT")


def stop_at(trainer, step):
    trainer.callbacks.append(StopAt(step))


def everything(trainer):
    arrays, meta = trainer.state()
    return {k: np.asarray(v) for k, v in arrays.items()}, meta


def test_discriminator_learns_to_separate_an_easy_case():
    real = (np.random.default_rng(0).normal(0, 0.1, (256, 2)) + 5).astype(np.float32)  # far from G's start
    # No BatchNorm in this D: normalising real and fake batches separately would hide their offset.
    G, _ = tiny_gan()
    t = GANTrainer(G, models.mlp_discriminator(2, hidden=16, depth=2), nz=4, lr=2e-3, log_every=4,
                   log=lambda *a: None)
    t.fit(real, epochs=8, batch_size=32)
    h = t.history
    assert all(np.isfinite([r[k] for r in h for k in ("loss_d", "loss_g", "d_x", "d_g_z")]))
    assert h[0]["loss_d"] > 1.3  # it starts at chance, about 2 log 2 ...
    assert min(r["loss_d"] for r in h) < 0.9  # ... and D learns to tell them apart
    assert max(r["d_x"] - r["d_g_z"] for r in h) > 0.3, h
    assert h[0]["step"] == 4 and t.step == 8 * 8


@pytest.mark.parametrize("options", [{}, dict(mmd_weight=1.0), dict(lr_decay=20)], ids=["plain", "mmd", "lr-decay"])
def test_resume_at_an_epoch_end_is_bit_identical(tmp_path, options):
    data = ring()
    whole = make(tmp_path / "a", **options)
    whole.fit(data, epochs=3, batch_size=32)
    first = make(tmp_path / "b", **options)
    first.fit(data, epochs=1, batch_size=32)
    resumed = make(tmp_path / "b", **options)
    resumed.restore(latest_checkpoint(tmp_path / "b"))
    resumed.fit(data, epochs=3, batch_size=32)
    (a, meta_a), (b, meta_b) = everything(whole), everything(resumed)
    assert a.keys() == b.keys() and any(k.startswith("optim_G/m/") for k in a)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert meta_a == meta_b


def test_interrupt_mid_epoch_saves_and_resumes_bit_identically(tmp_path):
    data = ring()
    whole = make(tmp_path / "a")
    whole.fit(data, epochs=2, batch_size=32)

    part = make(tmp_path / "b")
    stop_at(part, 11)  # what Ctrl-C (SIGINT) does after the 11th step
    assert part.fit(data, epochs=2, batch_size=32) == "interrupted"
    ckpt = latest_checkpoint(tmp_path / "b")
    assert checkpoint.load(ckpt)[1]["step"] == 11 and checkpoint.load(ckpt)[1]["step_in_epoch"] == 3

    resumed = make(tmp_path / "b")
    resumed.restore(ckpt)
    with pytest.raises(ValueError, match="stopped mid-epoch with batch_size=32; resume it with that"):
        resumed.fit(data, epochs=2, batch_size=64)
    assert resumed.fit(data, epochs=2, batch_size=32) == "done"
    part.callbacks.clear()
    assert part.fit(data, epochs=2, batch_size=32) == "done" and part.step == 16  # the old request is gone
    (a, _), (b, _) = everything(whole), everything(resumed)
    for k in a:
        if k != "history":  # the interrupted run logged at other steps
            assert np.array_equal(a[k], b[k]), k


def test_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    t = make(tmp_path)
    t.fit(ring(), epochs=1, batch_size=32)
    good = latest_checkpoint(tmp_path)
    t.D.layers[0].params["W"][:] = np.nan  # poison D: the next loss is NaN
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at step 9 \(epoch 2, batch 1\).*"
                                                rf"last good checkpoint is {good}"):
        t.fit(ring(), epochs=2, batch_size=32)
    assert latest_checkpoint(tmp_path) == good
    arrays, meta = checkpoint.load(good)
    assert meta["epoch"] == 1 and all(np.isfinite(v).all() for v in arrays.values())


def test_checkpoints_are_pruned_and_plain_data(tmp_path):
    t = make(tmp_path, keep=2)
    t.fit(ring(), epochs=4, batch_size=64)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["ckpt-e003-s0000012.npz", "ckpt-e004-s0000016.npz"]
    with np.load(tmp_path / "checkpoints" / names[-1], allow_pickle=False) as z:
        assert "G/0.W" in z.files and "D/3.running_mean" in z.files and "optim_D/v/5.b" in z.files
    assert (tmp_path / "samples_epoch004.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "log.csv").read_text().splitlines()[0] == "step,epoch,loss_d,loss_g,d_x,d_g_z,mmd,r_t"


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"a": np.ones(3)}, {"epoch": 1})

    def broken(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"a": np.zeros(3)}, {"epoch": 2})
    monkeypatch.undo()
    arrays, meta = checkpoint.load(path)
    assert meta == {"epoch": 1} and np.array_equal(arrays["a"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_checkpoint_load_refuses_pickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array("{}"), obj=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable minigan checkpoint"):
        checkpoint.load(path)


def test_a_trained_generator_works_without_the_trainer(tmp_path):
    t = GANTrainer(models.dcgan_generator(8, seed=0), models.dcgan_discriminator(seed=1), nz=8,
                   out_dir=tmp_path, log=lambda *a: None)
    t.fit(np.random.default_rng(0).uniform(-1, 1, (8, 1, 28, 28)).astype(np.float32), epochs=1, batch_size=4)
    arrays, meta = checkpoint.load(latest_checkpoint(tmp_path))
    G = models.dcgan_generator(meta["config"]["nz"])
    G.load_state_dict(checkpoint.subset(arrays, "G"))
    z = np.ones((2, 8), np.float32)
    np.testing.assert_array_equal(G.forward(z, training=False), t.G.forward(z, training=False))


def test_bad_batch_size_is_rejected_before_training():
    t = make()
    with pytest.raises(ValueError, match=r"expected 1 <= batch_size <= 256 .* got 300"):
        t.fit(ring(), epochs=1, batch_size=300)
    assert t.step == 0


def test_lr_decay_holds_the_rate_for_half_the_steps_then_takes_it_to_zero():
    """N = 8 steps: rates 1, 1, 1, 1 (t = 0 … 3 steps done), then 2(N − t)/N = 1, 0.75, 0.5, 0.25,
    then 0 — for G and D alike (TTUR's own rates scaled the same)."""
    t = make(lr=1e-3, lr_d=4e-3, lr_decay=8)
    rates = []
    t.callbacks.append(type("Rates", (), {"step_context": lambda self, tr: rates.append(
        (tr.model.opt["G"].lr, tr.model.opt["D"].lr))})())
    t.fit(ring(), steps=10, batch_size=32)
    expected = [min(1, max(0, 2 * (8 - k) / 8)) for k in range(10)]
    np.testing.assert_allclose(rates, [(1e-3 * f, 4e-3 * f) for f in expected], rtol=1e-12)
    assert rates[-1] == (0.0, 0.0) and rates[5] == pytest.approx((0.75e-3, 3e-3))
