"""demos/gmmn.py in its quick mode, in-process: training, the checkpoint per epoch, a resume after
Ctrl-C that ends where an uninterrupted run ends, the NaN stop, --sample --npy, its flag checks."""
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from minigan import checkpoint

from conftest import load_demo

DEMO = Path(__file__).resolve().parents[1] / "demos" / "gmmn.py"


@pytest.fixture(scope="module")
def gmmn():
    return load_demo("gmmn.py")


def weights(folder):
    arrays, meta = checkpoint.load_run(checkpoint.listed(folder / "checkpoints")[-1])
    return checkpoint.subset(arrays, "G"), meta


@pytest.mark.parametrize("argv", [["--data", "ring"], ["--space", "code"]], ids=["ring", "mnist-code"])
def test_quick_runs_write_checkpoints_and_samples(gmmn, tmp_path, argv, capsys):
    assert gmmn.main(["--quick", *argv, "--out", str(tmp_path)]) == 0
    G, meta = weights(tmp_path)
    assert meta["epoch"] == 2 and meta["config"]["kind"] == "gmmn" and all(np.isfinite(v).all() for v in G.values())
    assert (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"
    history = checkpoint.load_run(checkpoint.listed(tmp_path / "checkpoints")[-1])[0]["history"]
    assert history.shape == (2, 3) and history[1, 2] < history[0, 2]  # MMD² went down
    if argv[1] == "ring":
        assert "modes" in capsys.readouterr().out
        assert gmmn.main(["--sample", str(checkpoint.listed(tmp_path / "checkpoints")[-1]), "--npy", "--n-score", "300",
                          "--out", str(tmp_path / "s")]) == 0
        samples = np.load(tmp_path / "s" / "samples.npy")
        assert samples.shape == (300, 2) and samples.dtype == np.float32


def test_ctrl_c_saves_and_resume_ends_where_an_uninterrupted_run_ends(gmmn, tmp_path, monkeypatch, capsys):
    argv = ["--quick", "--data", "grid", "--batch-size", "250"]  # 4 steps an epoch, 8 in all
    assert gmmn.main([*argv, "--out", str(tmp_path / "whole")]) == 0
    calls = []
    real = gmmn.mmd2

    def interrupt_at_step_3(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the handler notes it; the next step saves and stops
        return real(*a, **kw)
    monkeypatch.setattr(gmmn, "mmd2", interrupt_at_step_3)
    assert gmmn.main([*argv, "--out", str(tmp_path / "cut")]) == 130
    assert "interrupted (SIGINT): saved" in capsys.readouterr().err
    _, meta = weights(tmp_path / "cut")
    assert (meta["epoch"], meta["step_in_epoch"], meta["step"]) == (0, 3, 3)
    monkeypatch.setattr(gmmn, "mmd2", real)
    assert gmmn.main([*argv, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    whole, cut = weights(tmp_path / "whole")[0], weights(tmp_path / "cut")[0]
    assert all(np.array_equal(whole[k], cut[k]) for k in whole)


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(gmmn, tmp_path, monkeypatch, capsys):
    calls = []
    real = gmmn.mmd2

    def nan_at_step_6(*a, **kw):
        calls.append(1)
        value, grad = real(*a, **kw)
        return (np.array(np.nan) if len(calls) == 6 else value), grad
    monkeypatch.setattr(gmmn, "mmd2", nan_at_step_6)
    assert gmmn.main(["--quick", "--data", "grid", "--batch-size", "250", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    kept = checkpoint.listed(tmp_path / "checkpoints")[-1]
    assert "non-finite MMD² at step 6 (epoch 2)" in err and f"the last good checkpoint is {kept}" in err
    assert checkpoint.load_run(kept)[1]["step"] == 4


@pytest.mark.parametrize("argv, message", [
    (["--data", "ring", "--space", "code"], "--space code goes with --data mnist, got --data ring"),
    (["--npy"], "--npy goes with --sample CKPT"),
    (["--sigma-factors", "1", "-2"], "--sigma-factors: expected numbers > 0, got 1.0 -2.0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
])
def test_flag_mistakes_are_one_line(gmmn, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        gmmn.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_refused(gmmn, tmp_path, capsys):
    assert gmmn.main(["--quick", "--data", "ring", "--out", str(tmp_path), "--resume"]) == 2
    assert f"--resume: no checkpoint in {tmp_path / 'checkpoints'}" in capsys.readouterr().err


def test_mnist_without_a_test_split_trains_and_says_it_did_not_score(gmmn, tmp_path, monkeypatch, capsys):
    """Offline with no test split: the run trains and saves its samples, then says why it did not
    score (exit 0); a --test-dir that does not hold the split is refused before any training."""
    digits = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)

    def load_mnist(split="train", *, data_dir=None, log=print, **kw):
        if split == "train":
            return digits, np.zeros(64, np.uint8), "synthetic digits"
        raise gmmn.data.DataError(f"mnist test: not in {data_dir or 'the cache'}")

    monkeypatch.setattr(gmmn.data, "load_mnist", load_mnist)
    argv = ["--epochs", "1", "--batch-size", "32", "--n-score", "64", "--hidden", "16"]
    assert gmmn.main([*argv, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "not scored: mnist test: not in the cache" in out and (tmp_path / "a" / "samples.png").is_file()
    assert checkpoint.listed(tmp_path / "a" / "checkpoints")

    assert gmmn.main([*argv, "--out", str(tmp_path / "b"), "--test-dir", str(tmp_path / "nowhere")]) == 2
    assert f"mnist test: not in {tmp_path / 'nowhere'}" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
