"""demos/mnist_gan.py as a user runs it, in a temporary folder."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigan import backend, checkpoint

from conftest import load_demo as demo_module, run_demo

DEMO = Path(__file__).resolve().parents[1] / "demos" / "mnist_gan.py"
PNG = b"\x89PNG\r\n\x1a\n"


def run(*args, cwd):
    """`python demos/mnist_gan.py ARGS` in this process (the Ctrl-C test runs a process of its own)."""
    return run_demo("mnist_gan.py", *args, cwd=cwd)


def test_dry_run_end_to_end(tmp_path):
    out = tmp_path / "out"
    r = run("--dry-run", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Loss_D" in r.stderr and "D(G(z))" in r.stderr
    for name in ("samples_epoch001.png", "losses.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert (out / "log.csv").read_text().startswith("step,epoch,loss_d,loss_g,d_x,d_g_z,mmd,r_t\n3,")
    assert not (out / "metrics.jsonl").exists()  # a dry run is not scored unless --eval-every says
    (ckpt,) = (out / "checkpoints").glob("ckpt-*.npz")
    arrays, meta = checkpoint.load(ckpt)
    assert meta["step"] == 3 and meta["epoch"] == 1 and meta["config"]["nz"] == 100
    assert arrays["G/0.W"].shape == (100, 7 * 7 * 128) and np.isfinite(arrays["D/6.W"]).all()  # half width

    r = run("--dry-run", "--out", str(out), "--resume", "--epochs", "3", "--eval-every", "2", cwd=tmp_path)
    assert r.returncode == 0 and "resumed from" in r.stdout and "epoch 3/3" in r.stderr, r.stderr
    scores = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in scores] == [2, 3]  # every 2nd epoch, and after the last
    assert scores[-1]["fid"] > 0 and 1 <= scores[-1]["inception_score"] <= 10
    assert (out / "samples_epoch003.png").read_bytes()[:8] == PNG

    r = run("--sample", str(ckpt), "--out", str(out), "--n-samples", "16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (out / "sample.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--lr", "-1"], "expected --lr > 0"),
    (["--backend", "tpu"], "invalid choice: 'tpu'"),
    (["--data-dir", "no/such/folder"], "--data-dir no/such/folder: expected train-images-idx3-ubyte.gz"),
    (["--resume", "nothing.npz", "--dry-run"], "--resume: no checkpoint nothing.npz"),
])
def test_bad_flags_and_missing_data_get_a_clear_message(tmp_path, args, message):
    r = run(*args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # one line, no usage block before it


def test_a_mistyped_flag_gets_a_guess(tmp_path):
    r = run("--lecma", "1", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == ("mnist_gan.py: error: unrecognized arguments: --lecma 1 "
                                                     "(did you mean --lecam?) (see --help)"), r.stderr


def test_cupy_without_a_gpu_exits_2_with_a_message(tmp_path):
    if backend.cupy_available()[0]:
        pytest.skip("a CUDA device is present: --backend cupy works here")
    r = run("--backend", "cupy", "--dry-run", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "--backend cupy is not usable here" in r.stderr and "Traceback" not in r.stderr


def test_help_explains_each_flag_shows_its_default_and_cites_each_cures_paper(tmp_path):
    import re

    from minigan import cures
    p = demo_module("mnist_gan.py").parser()
    formatter = p._get_formatter()
    for action in p._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[0]
        assert action.help and len(action.help.split()) >= 3, f"{flag} has no help worth the name"
        shown = action.default is not None and action.default is not False  # 0 and 0.0 are shown
        assert "Default:" in formatter._expand_help(action) or not shown, f"{flag}'s help does not show its default"
    for o in cures.options().values():  # every cure's flag names the paper it comes from
        assert not o.cli or re.search(r"(et al\.|Heusel|Goodfellow) (19|20)\d\d", o.help) or o.key in \
            {"mmd_space", "gp_weight", "gp_every", "madgan_sim", "mrgan_mode", "mrgan_diffusion", "ebgan_margin",
             "ebgan_pt", "d_steps", "unroll_order"}, f"--{o.key}: its help cites no paper"


def test_ctrl_c_saves_a_checkpoint_and_exits(tmp_path):
    import signal
    import time
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(DEMO), "--dry-run", "--epochs", "100000", "--out", str(out)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((out / "checkpoints").glob("ckpt-*.npz")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted (SIGINT): saved" in stdout + stderr
    newest = sorted((out / "checkpoints").glob("ckpt-*.npz"))[-1]
    _, meta = checkpoint.load(newest)
    assert meta["step"] >= 3


def test_trace_prints_the_first_step(tmp_path):
    r = run("--dry-run", "--trace", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith(("forward", "backward"))]
    assert lines[0].startswith("forward  G.0 Dense") and "(8, 6272)" in lines[0]  # half width
    assert any(line.startswith("backward G.0 Dense") and "|dW|" in line for line in lines)
    assert len(lines) == 12 + 3 * 7 * 2 + 12  # G forward, D 3x forward and backward, G backward


def load_demo():
    import importlib.util
    spec = importlib.util.spec_from_file_location("mnist_gan_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_default_is_the_readme_stack_and_plain_is_the_published_dcgan(tmp_path):
    from minigan import models
    from minigan.trainer import GANTrainer
    demo = load_demo()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"`{demo.flags_text(demo.DEFAULT_STACK)}`" in readme  # the README names the default flags
    images = np.random.default_rng(0).uniform(-1, 1, (16, 1, 28, 28)).astype(np.float32)

    default_args = demo.parse_args(["--out", str(tmp_path / "d")])
    default = demo.build_trainer(default_args)
    assert default.config["lr"] == demo.DEFAULT_STACK["lr"] and default.config["ema"] == demo.DEFAULT_STACK["ema"]
    assert default_args.batch_size == demo.DEFAULT_STACK["batch_size"] == 128
    assert demo.parse_args(["--plain"]).batch_size == 64 and demo.parse_args(["--dry-run"]).batch_size == 8
    assert default.G.layers[0].params["W"].shape == (100, 7 * 7 * round(256 * demo.DEFAULT_STACK["width"]))

    # --plain: the trainer, and 2 steps of it, equal a GANTrainer built with the DCGAN's published settings
    plain = demo.build_trainer(demo.parse_args(["--plain", "--out", str(tmp_path / "p")]))
    dcgan = GANTrainer(models.dcgan_generator(100, seed=0), models.dcgan_discriminator(seed=1), nz=100, lr=2e-4,
                       beta1=0.5, seed=0, log=lambda *a: None)
    assert plain.config == dcgan.config and plain.config["ema"] is None  # the same options, however spelled
    for t in (plain, dcgan):
        t.log = lambda *a: None
        t.out_dir = None
        t.fit(images, epochs=1, batch_size=8)
    assert all(np.array_equal(a, b) for a, b in zip(plain.G.state_dict().values(), dcgan.G.state_dict().values()))

    # cure flags given with --plain still apply
    mixed = demo.build_trainer(demo.parse_args(["--plain", "--ema", "--out", str(tmp_path / "m")])).config
    assert mixed["ema"] == 0.999 and mixed["lr"] == 2e-4


def test_width_narrows_every_layer_and_checkpoints_remember_it(tmp_path):
    out = tmp_path / "half"
    r = run("--dry-run", "--width", "0.5", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (ckpt,) = (out / "checkpoints").glob("ckpt-*.npz")
    arrays, _ = checkpoint.load(ckpt)
    shapes = {k: arrays[k].shape for k in ("G/0.W", "G/4.W", "G/7.W", "G/10.W", "D/0.W", "D/2.W", "D/6.W")}
    assert shapes == {"G/0.W": (100, 7 * 7 * 128), "G/4.W": (128, 64, 5, 5), "G/7.W": (64, 32, 5, 5),
                      "G/10.W": (32, 1, 5, 5), "D/0.W": (32, 1, 5, 5), "D/2.W": (64, 32, 5, 5),
                      "D/6.W": (7 * 7 * 64, 1)}, shapes
    # --sample rebuilds the narrow generator from the checkpoint alone
    r = run("--sample", str(ckpt), "--out", str(tmp_path / "s"), "--n-samples", "4", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "s" / "sample.png").read_bytes()[:8] == PNG, r.stderr
    # a resume at another width is refused, naming the first layer that differs
    r = run("--dry-run", "--resume", "--out", str(out), "--epochs", "2", "--width", "1", cwd=tmp_path)
    assert r.returncode == 2 and "its network G differs from this run's at layer 0: saved Dense(100, 6272" in r.stderr
    r = run("--dry-run", "--width", "0", "--out", str(tmp_path / "z"), cwd=tmp_path)
    assert r.returncode == 2 and "expected --width > 0 (finite), got 0.0" in r.stderr
