"""The measurement demos' quick modes, end to end in a temporary folder."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigan import metrics, models
from minigan.trainer import GANTrainer, latest_checkpoint

from conftest import run_demo

DEMOS = Path(__file__).resolve().parents[1] / "demos"
PNG = b"\x89PNG\r\n\x1a\n"


def run(script, *args, cwd):
    """The demo's command line, in this process; its stdout."""
    r = run_demo(script, *args, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_mixture_gan_quick(tmp_path):
    out = run("mixture_gan.py", "--quick", "--mixtures", "ring", "--out", str(tmp_path), cwd=tmp_path)
    assert "GAN (published)" in out and "ring     GAN + mmd_weight=1.0" in out
    for name in ("ring_gan.png", "ring_cured.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG


@pytest.mark.parametrize("conv", [False, True])
def test_autoencoder_quick(tmp_path, conv):
    out = run("autoencoder.py", "--quick", *(["--conv"] if conv else []), "--out", str(tmp_path), cwd=tmp_path)
    mse = float(out.splitlines()[1].split()[2])
    assert 0 < mse < 0.2
    assert (tmp_path / f"reconstructions_{'conv' if conv else 'dense'}.png").read_bytes()[:8] == PNG


def test_shipped_classifier_is_accurate_and_recorded():
    model, record = metrics.load_classifier()
    assert record["command"].startswith("python demos/train_classifier.py") and record["test_accuracy"] >= 0.95
    second, record = metrics.load_classifier(metrics.SHIFT_WEIGHTS)  # the second extractor, and its docstring
    import re
    same = lambda text: re.sub(r"--test-dir \S+", "--test-dir DIR", text.replace("\\\n        ", ""))  # noqa: E731
    assert same(record["command"]) in same((DEMOS / "train_classifier.py").read_text())
    assert "test" in record["train"] and record["test_accuracy"] >= 0.97


def test_evaluate_a_checkpoint(tmp_path, mnist_dir):
    t = GANTrainer(models.dcgan_generator(8), models.dcgan_discriminator(), nz=8, out_dir=tmp_path,
                   log=lambda *a: None)
    t.fit(np.random.default_rng(0).uniform(-1, 1, (8, 1, 28, 28)).astype(np.float32), epochs=1, batch_size=4)
    as_train = tmp_path / "test-as-train"  # the test split under the training split's names (links)
    as_train.mkdir()
    for kind in ("images-idx3", "labels-idx1"):
        (as_train / f"train-{kind}-ubyte.gz").symlink_to(mnist_dir / f"t10k-{kind}-ubyte.gz")
    out = run("evaluate.py", str(latest_checkpoint(tmp_path)), "-n", "500", "--data-dir", str(as_train),
              "--test-dir", str(mnist_dir), "--json", cwd=tmp_path)
    result = json.loads(out)
    # the real-vs-real floor, here the test split against itself: FID ~ 0, IS near the classifier's
    assert abs(result["fid"]["real_train_vs_test"]) < 1e-6 and result["inception_score"]["real_train_vs_test"] > 8
    assert result["fid"]["generated"] > 1 and result["classes_present"]["real_train_vs_test"] == 10


def readme_commands(marker):
    """The cures.py arguments of each command in the README's block marked <!-- marker -->,
    with --out dropped (the tests give their own)."""
    import re
    import shlex
    readme = (DEMOS.parent / "docs" / "results.md").read_text()
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)\n```", readme, re.S)
    assert block, f"docs/results.md has no block marked <!-- {marker} -->"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line)
        assert words[:2] == ["python", "demos/cures.py"], line
        i = words.index("--out")
        commands.append(words[2:i] + words[i + 2:])
    return commands


def test_cures_benchmark_quick_2d(tmp_path):
    (command,) = readme_commands("cures-2d")  # the README's command, --quick
    out = run("cures.py", *command, "--quick", "--out", str(tmp_path), cwd=tmp_path)
    table = (tmp_path / "table_2d.md").read_text()
    arms = [line.split("|")[2].strip() for line in table.splitlines()[2:]]
    assert len(arms) >= 14 and {"gan", "pacgan4", "unrolled5", "ema", "stack"} <= set(arms), table
    assert "mbdisc" not in arms  # the slow arm runs only when named
    for arm in arms:
        samples = np.load(tmp_path / "ring" / arm / "seed0.npy")
        assert samples.shape == (2500, 2) and samples.dtype.kind == "f" and np.isfinite(samples).all()
        assert (tmp_path / "ring" / arm / "flags.txt").is_file()
        assert (tmp_path / "ring" / f"{arm}.png").read_bytes()[:8] == PNG
    assert "--pack 4" in (tmp_path / "ring" / "pacgan4" / "flags.txt").read_text() and "wrote" in out


def test_cures_benchmark_quick_mnist(tmp_path):
    for command in readme_commands("cures-mnist"):  # the README's commands, --quick, into one folder
        run("cures.py", *command, "--quick", "--out", str(tmp_path), cwd=tmp_path)
    table = (tmp_path / "table_mnist.md").read_text()
    arms = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert {"plain", "ema", "diffaug", "sn", "hinge", "mbstd", "lecam", "pacgan2", "pixel-mmd", "feature-mmd"} <= set(arms)
    assert arms[-1].startswith("real digits")
    for arm in arms[:-1]:
        scores = json.loads((tmp_path / "mnist" / arm / "seed0.json").read_text())
        assert {"inception_score", "fid", "fid_shift", "kid", "kl_to_uniform", "classes_present", "r_t",
                "ms_per_step", "wall_s"} <= set(scores)
        samples = np.load(tmp_path / "mnist" / arm / "seed0_samples.npy")
        assert samples.shape == (64, 1, 28, 28) and np.abs(samples).max() <= 1
        assert (tmp_path / "mnist" / arm / "grid.png").read_bytes()[:8] == PNG


def test_cures_benchmark_keeps_finished_runs_and_refuses_changed_flags(tmp_path):
    first = run("cures.py", "2d", "--quick", "--arms", "gan", "ema", "--out", str(tmp_path), cwd=tmp_path)
    saved = (tmp_path / "ring" / "ema" / "seed0.json").read_text()
    # a second process on the same OUT: the finished runs are kept, the new arm is added to one table
    again = run("cures.py", "2d", "--quick", "--arms", "ema", "ls", "--out", str(tmp_path), cwd=tmp_path)
    assert "ring ema seed 0: kept from" in again and "ring ls seed 0: {" in again and "kept" not in first
    assert (tmp_path / "ring" / "ema" / "seed0.json").read_text() == saved
    table = (tmp_path / "table_2d.md").read_text()
    assert [line.split("|")[2].strip() for line in table.splitlines()[2:]] == ["gan", "ls", "ema"]
    (tmp_path / "ring" / "ls" / "flags.txt").write_text("--loss hinge\n")
    r = run_demo("cures.py", "2d", "--quick", "--arms", "ls", "--out", tmp_path)
    assert r.returncode == 2 and "were made with flags '--loss hinge', this arm is now '--loss ls'" in r.stderr


def test_cures_benchmark_refuses_an_unknown_arm(tmp_path):
    r = run_demo("cures.py", "2d", "--arms", "magic", "--out", tmp_path)
    assert r.returncode == 2 and "--arms: unknown magic" in r.stderr and "Traceback" not in r.stderr


def test_a_stopped_benchmark_run_is_not_recorded(tmp_path):
    import signal
    import time
    proc = subprocess.Popen([sys.executable, str(DEMOS / "cures.py"), "2d", "--arms", "gan", "--mixtures", "ring",
                             "--seeds", "1", "--steps", "10000000", "--out", str(tmp_path)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "ring" / "gan" / "flags.txt").exists() and time.time() < deadline:
        time.sleep(0.1)  # the arm's folder is made just before its first run starts
    time.sleep(1.5)  # into the training loop
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err and "not recorded" in err, err[-2000:]
    assert not (tmp_path / "ring" / "gan" / "seed0.json").exists() and "Traceback" not in err


def test_frontier_quick(tmp_path):
    """Two recipes for one second of training each: points at each quarter of the budget (the clock
    stops at the first step past it), the table, the plot and the grid."""
    out = run("frontier.py", "--quick", "--recipes", "full", "half", "--out", str(tmp_path), cwd=tmp_path)
    assert "wrote" in out
    for recipe in ("full", "half"):
        points = json.loads((tmp_path / recipe / "seed0.json").read_text())["points"]
        assert len(points) == 4
        for k, p in enumerate(points, 1):
            assert p["minutes"] * 60 >= k / 4 and p["fid"] > 0 and 1 <= p["inception_score"] <= 10
        assert [p["steps"] for p in points] == sorted(p["steps"] for p in points) and points[0]["steps"] >= 1
        assert (tmp_path / recipe / "grid.png").read_bytes()[:8] == PNG
    table = (tmp_path / "table.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[4:]] == ["full", "half"], table
    assert "`--width 0.5 --lr 1e-3 --batch-size 64`" in table and (tmp_path / "frontier.png").read_bytes()[:8] == PNG
    again = run("frontier.py", "--quick", "--recipes", "half", "--out", str(tmp_path), cwd=tmp_path)
    assert "half seed 0: kept from" in again
