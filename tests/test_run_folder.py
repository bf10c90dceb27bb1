"""One run, one folder: a new run never mixes itself into another run's files, a dry run never
writes where a real run lives, and a refused command leaves nothing behind. The demo runs
in-process (demos/mnist_gan.py's main), on a tiny IDX split or --dry-run's synthetic data."""
from pathlib import Path

import numpy as np
import pytest

from minigan import checkpoint

from conftest import load_demo
from test_data import write_split

DEMO = Path(__file__).resolve().parents[1] / "demos" / "mnist_gan.py"


@pytest.fixture(scope="module")
def demo():
    return load_demo("mnist_gan.py")


def run(demo, capsys, *args):
    """(exit code, stdout, stderr) of `python demos/mnist_gan.py ARGS`, in this process."""
    try:
        code = demo.main([str(a) for a in args])
    except SystemExit as e:  # argparse's errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def contents(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def real_run(tmp_path, demo, capsys):
    """A finished (tiny) real run in tmp_path/run: 12 digits, batch 4, 1 epoch."""
    write_split(tmp_path / "digits", "train", n=12)
    out = tmp_path / "run"
    code, _, err = run(demo, capsys, "--data-dir", tmp_path / "digits", "--batch-size", 4, "--epochs", 1,
                       "--eval-every", 0, "--out", out)
    assert code == 0, err
    return out


def test_a_new_run_refuses_a_folder_that_holds_another_run(tmp_path, demo, capsys, real_run):
    before = contents(real_run)
    for args in (["--dry-run"], ["--data-dir", tmp_path / "digits", "--batch-size", 4, "--epochs", 1, "--seed", 1]):
        code, _, err = run(demo, capsys, *args, "--out", real_run)
        assert code == 2, err
        assert err.strip().splitlines()[-1].startswith(f"mnist_gan.py: {real_run} holds another run (checkpoints "
                                                      "up to ckpt-e001-s0000003.npz); continue it with --resume, "
                                                      "choose a fresh --out")
        assert contents(real_run) == before  # not a byte changed, not a file added

    code, out, err = run(demo, capsys, "--data-dir", tmp_path / "digits", "--batch-size", 4, "--epochs", 1,
                         "--seed", 1, "--eval-every", 0, "--out", real_run, "--overwrite")
    assert code == 0, err
    assert f"removed the previous run's files from {real_run}" in out
    log = (real_run / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and len(log) == 2  # the new run's row only
    _, meta = checkpoint.load_run(checkpoint.listed(real_run / "checkpoints")[-1])
    assert meta["config"]["seed"] == 1


def test_a_dry_run_has_its_own_folder_and_replaces_only_a_dry_run(tmp_path, demo, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for seed in (0, 1):
        code, out, err = run(demo, capsys, "--dry-run", "--seed", seed, "--eval-every", 0)
        assert code == 0, err
    assert not (tmp_path / "runs" / "mnist_gan").exists()
    folder = tmp_path / "runs" / "dry_run"
    assert "removed the previous dry run's files from runs/dry_run" in out
    assert len((folder / "log.csv").read_text().splitlines()) == 2  # the second dry run's row only
    (ckpt,) = checkpoint.listed(folder / "checkpoints")
    assert checkpoint.load_run(ckpt)[1]["config"]["seed"] == 1


def test_a_refused_resume_creates_nothing(tmp_path, demo, capsys):
    (tmp_path / "bad.npz").write_bytes(b"not a checkpoint")
    for target in (tmp_path / "bad.npz", tmp_path / "missing.npz"):
        code, _, err = run(demo, capsys, "--dry-run", "--resume", target, "--out", tmp_path / "new")
        assert code == 2 and str(target) in err.strip().splitlines()[-1], err
        assert not (tmp_path / "new").exists()
    code, _, err = run(demo, capsys, "--dry-run", "--resume", "--out", tmp_path / "new")
    assert code == 2 and f"--resume: no checkpoint in {tmp_path / 'new'}" in err
    assert not (tmp_path / "new").exists()


def test_resume_takes_a_run_folder_and_continues_it_there(tmp_path, demo, capsys, real_run, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout: there the README's demo may have left runs/mnist_gan
    code, out, err = run(demo, capsys, "--data-dir", tmp_path / "digits", "--batch-size", 4, "--epochs", 2,
                         "--eval-every", 0, "--resume", real_run)
    assert code == 0, err
    assert f"resumed from {real_run / 'checkpoints' / 'ckpt-e001-s0000003.npz'}" in out
    assert [p.name for p in checkpoint.listed(real_run / "checkpoints")][-1] == "ckpt-e002-s0000006.npz"
    assert not (tmp_path / "runs" / "mnist_gan").exists()


def test_a_resume_into_a_folder_of_another_run_is_refused(tmp_path, demo, capsys, real_run):
    other = tmp_path / "other"
    code, _, err = run(demo, capsys, "--dry-run", "--out", other)
    assert code == 0, err
    before = contents(other)
    code, _, err = run(demo, capsys, "--data-dir", tmp_path / "digits", "--batch-size", 4, "--epochs", 2,
                       "--resume", real_run, "--out", other)
    assert code == 2 and f"{other} holds another run" in err, err
    assert contents(other) == before
    np.testing.assert_equal(len(checkpoint.listed(real_run / "checkpoints")), 1)
