"""Never lose a run, never answer a user's mistake with a traceback: signals, kill -9 inside a
checkpoint write, damaged files, full and read-only disks, two runs on one folder, a trickling
mirror, and flags the run would choke on. Real processes and a real HTTP server on 127.0.0.1."""
import errno
import hashlib
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minigan import checkpoint, data
from minigan.trainer import TrainingDiverged, latest_checkpoint

from conftest import run_demo
from test_data import write_split
from test_trainer import make, ring

REPO = Path(__file__).resolve().parents[1]
DEMOS = REPO / "demos"


def demo(script, *args):
    """The demo's command line, in this process (tests that need a process of their own use start())."""
    return run_demo(script, *args)


def one_line_error(r, *needles):
    """Exit 2, no traceback, and the error as the last line of stderr (progress lines may precede it)."""
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and not any(line.startswith(" ") for line in lines), r.stderr
    assert not any("error" in line.lower() for line in lines[:-1]), r.stderr
    for needle in needles:
        assert needle in lines[-1], r.stderr


def start(out, *args, pause_save=None):
    """The dry run in a process of its own; pause_save=(n, marker): its n-th checkpoint write
    pauses with the data written, touching marker (tests/faults.py, injected from outside)."""
    fault = [] if pause_save is None else [str(REPO / "tests" / "faults.py"), "pause-save", str(pause_save[0]),
                                           str(pause_save[1])]
    return subprocess.Popen([sys.executable, *fault, str(DEMOS / "mnist_gan.py"), "--dry-run", "--out", str(out),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


# ---- work lost ---------------------------------------------------------------------------------
def test_kill_9_inside_a_checkpoint_write_leaves_nothing_resume_would_pick(tmp_path):
    out, marker = tmp_path / "out", tmp_path / "paused"
    proc = start(out, "--epochs", "5", pause_save=(2, marker))
    wait_for(marker.exists)
    proc.kill()  # SIGKILL, with the second checkpoint's data written but not moved into place
    proc.communicate()
    folder = out / "checkpoints"
    leftovers = list(folder.glob(".ckpt-*.tmp"))
    assert leftovers and not any(p.match("ckpt-*.npz") for p in leftovers)
    assert [p.name for p in checkpoint.listed(folder)] == ["ckpt-e001-s0000003.npz"]
    r = demo("mnist_gan.py", "--dry-run", "--out", out, "--resume", "--epochs", "2")
    assert r.returncode == 0 and "resumed from" in r.stdout and "ckpt-e001-s0000003.npz" in r.stdout, r.stderr
    assert not list(folder.glob(".ckpt-*.tmp"))  # cleaned by the next run of this folder (stale lock taken over)
    assert [p.name for p in checkpoint.listed(folder)][-1] == "ckpt-e002-s0000006.npz"


def test_resume_keeps_the_runs_batch_unless_told(tmp_path):
    """A run saved at another batch (an older default's) goes on with its own, saying so;
    --batch-size given changes it."""
    out = tmp_path / "out"
    r = demo("mnist_gan.py", "--dry-run", "--batch-size", "4", "--out", out)
    assert r.returncode == 0, r.stderr
    r = demo("mnist_gan.py", "--dry-run", "--out", out, "--resume", "--epochs", "2")
    assert r.returncode == 0 and "resume: batches of 4, the resumed run's" in r.stdout, r.stderr
    assert "batch 4, backend numpy" in r.stdout, r.stdout
    assert checkpoint.load_run(checkpoint.listed(out / "checkpoints")[-1])[1]["batch_size"] == 4
    r = demo("mnist_gan.py", "--dry-run", "--out", out, "--resume", "--epochs", "3", "--batch-size", "8")
    assert r.returncode == 0 and "resume: batches of" not in r.stdout, r.stderr
    assert checkpoint.load_run(checkpoint.listed(out / "checkpoints")[-1])[1]["batch_size"] == 8


def test_sigterm_saves_like_ctrl_c_and_resumes(tmp_path):
    out = tmp_path / "out"
    proc = start(out, "--epochs", "100000")
    wait_for(lambda: checkpoint.listed(out / "checkpoints"))
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted (SIGTERM): saved" in stdout + stderr, stderr
    newest = checkpoint.listed(out / "checkpoints")[-1]
    _, meta = checkpoint.load_run(newest)
    assert meta["step"] >= 3
    r = demo("mnist_gan.py", "--dry-run", "--out", out, "--resume", "--epochs", str(meta["epoch"] + 1))
    assert r.returncode == 0 and f"step {meta['step']}" in r.stdout, r.stderr


def test_checkpoints_order_by_step_and_pruning_touches_only_the_runs_files(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    names = ["ckpt-e998-s0009980.npz", "ckpt-e999-s0009990.npz", "ckpt-e1000-s0010000.npz", "ckpt-e1001-s0010010.npz"]
    for n in names + ["ckpt-best.npz", "ckpt-e5.npz", "notes.txt"]:
        (folder / n).write_bytes(b"x")
    assert [p.name for p in checkpoint.listed(folder)] == names  # text order would put e1000 first
    assert latest_checkpoint(tmp_path).name == "ckpt-e1001-s0010010.npz"
    checkpoint.prune(folder, keep=2)
    assert sorted(p.name for p in folder.iterdir()) == sorted(names[2:] + ["ckpt-best.npz", "ckpt-e5.npz", "notes.txt"])


def test_an_inf_in_the_models_state_stops_the_run_and_keeps_the_good_checkpoint(tmp_path):
    t = make(tmp_path)
    t.fit(ring(), epochs=1, batch_size=32)
    good = latest_checkpoint(tmp_path)
    class RunningVarBlowsUp:  # what a huge learning rate did: finite losses, Inf statistics
        def after_step(self, trainer):
            trainer.D.layers[3].buffers["running_var"] = np.full(16, np.inf, np.float32)
    t.callbacks.append(RunningVarBlowsUp())
    with pytest.raises(TrainingDiverged, match=r"non-finite values in the model's state at step 16 \(D/3.running_var\)"
                                                rf".*last good checkpoint is {good}"):
        t.fit(ring(), epochs=2, batch_size=32)
    assert checkpoint.listed(tmp_path / "checkpoints") == [good]
    arrays, _ = checkpoint.load_run(good)
    assert all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f")


def test_two_runs_on_one_out_folder(tmp_path):
    out, marker = tmp_path / "out", tmp_path / "paused"
    first = start(out, "--epochs", "3", pause_save=(1, marker))
    wait_for(marker.exists)  # the first run holds the folder, paused in its first checkpoint write
    r = demo("mnist_gan.py", "--dry-run", "--out", out)
    one_line_error(r, f"{out} is in use by another run (process {first.pid})")
    first.kill()
    first.communicate()
    r = demo("mnist_gan.py", "--dry-run", "--out", out)  # the dead run's lock is recognised as stale
    assert r.returncode == 0, r.stderr
    assert not (out / ".lock").exists()


def test_a_damaged_newest_checkpoint_is_skipped_with_a_message(tmp_path):
    out = tmp_path / "out"
    assert demo("mnist_gan.py", "--dry-run", "--out", out, "--epochs", "2").returncode == 0
    older, newest = checkpoint.listed(out / "checkpoints")[-2:]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    r = demo("mnist_gan.py", "--dry-run", "--out", out, "--resume", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    assert f"skipping a damaged checkpoint: {newest}" in r.stdout and f"resumed from {older}" in r.stdout


GOOD_BODY = b"the good mirror's file " * 100


class _Slow(http.server.BaseHTTPRequestHandler):
    """/trickle: one byte every 50 ms of a 100 kB body; /huge: a Content-Length of 1 GB;
    /endless: more bytes than any expected size, no Content-Length; /good: GOOD_BODY at once."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        if "/good/" in self.path:
            self.send_header("Content-Length", str(len(GOOD_BODY)))
            self.end_headers()
            self.wfile.write(GOOD_BODY)
            return
        if self.path.endswith("/huge/t10k-labels-idx1-ubyte.gz"):
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            return
        self.end_headers()
        try:
            if "/trickle/" in self.path:
                for _ in range(100_000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                for _ in range(2000):
                    self.wfile.write(b"y" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def slow_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("path, size, message", [
    ("trickle/", 200_000, r"not finished after the 1 s deadline"),
    ("huge/", 4542, r"declares 1,073,741,824 bytes, more than the 4,542 expected"),
    ("endless/", 4542, r"sent more than the 4,542 bytes expected; stopped reading"),
])
def test_downloads_have_a_deadline_and_a_size_cap(tmp_path, slow_server, path, size, message):
    start_time = time.monotonic()
    with pytest.raises(data.DataError, match=message):
        data.download("t10k-labels-idx1-ubyte.gz", tmp_path, [slow_server + path], "0" * 32, size=size,
                      timeout=5, deadline=1)
    assert time.monotonic() - start_time < 15 and not list(tmp_path.iterdir())


def test_a_trickling_mirror_is_abandoned_for_the_next_one(tmp_path, slow_server):
    """Under min_rate bytes/s averaged over a window: given up after one window (here 0.5 s,
    30 s by default), saying so, with the default 600 s deadline left far away."""
    name, good_md5 = "t10k-labels-idx1-ubyte.gz", hashlib.md5(GOOD_BODY).hexdigest()
    said = []
    start_time = time.monotonic()
    path = data.download(name, tmp_path, [slow_server + "trickle/", slow_server + "good/"], good_md5,
                         size=200_000, min_rate=1000, window=0.5, log=said.append)
    assert time.monotonic() - start_time < 5 and path.read_bytes() == GOOD_BODY
    assert said[0].startswith(f"gave up on {slow_server}trickle/{name}: too slow: averaged ")
    assert said[-1] == f"downloaded {slow_server}good/{name}"
    path.unlink()
    with pytest.raises(data.DataError, match=r"could not download t10k-labels-idx1-ubyte.gz: .*trickle/.*: too slow: "
                                             r"averaged [0-9]{1,3} bytes/s over 0.5\d* s \(the floor is 1,000 "
                                             r"bytes/s over 0.5 s\); abandoned after [0-9]+ of at most 200,000"):
        data.download(name, tmp_path, [slow_server + "trickle/"], good_md5, size=200_000, min_rate=1000,
                      window=0.5, log=said.append)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"download: expected min_rate >= 0 bytes/s and window > 0 s, got 1000 and 0"):
        data.download(name, tmp_path, [slow_server + "good/"], good_md5, min_rate=1000, window=0)


def test_the_canonical_sizes_cap_real_downloads():
    for name in data.DATASETS:
        assert set(data.DATASETS[name]["sizes"]) == set(data.DATASETS[name]["md5"])
    assert data.DATASETS["mnist"]["sizes"]["t10k-images-idx3-ubyte.gz"] == 1648877


# ---- one line, not a traceback -----------------------------------------------------------------
@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    assert demo("mnist_gan.py", "--dry-run", "--out", out).returncode == 0
    return checkpoint.listed(out / "checkpoints")[-1]


def damaged(kind, good, folder):
    path = folder / f"{kind}.npz"
    raw = good.read_bytes()
    arrays, meta = checkpoint.load_run(good)
    if kind == "truncated":
        path.write_bytes(raw[:len(raw) // 3])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "bit-flipped":
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x40
        path.write_bytes(bytes(flipped))
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "no-meta":
        np.savez(path, **{k: v for k, v in arrays.items() if k.startswith("G/")})
    else:
        text = {"invalid-json": "{not json",
                "missing-key": json.dumps({k: v for k, v in meta.items() if k != "step"}),
                "negative-nz": json.dumps(dict(meta, config=dict(meta["config"], nz=-3))),
                "enormous-nz": json.dumps(dict(meta, config=dict(meta["config"], nz=10 ** 12))),
                "other-nz": json.dumps(dict(meta, config=dict(meta["config"], nz=7)))}[kind]
        np.savez(path, meta=np.array(text), **arrays)
    return path


KINDS = ["truncated", "empty", "bit-flipped", "random-bytes", "no-meta", "invalid-json", "missing-key",
         "negative-nz", "enormous-nz", "other-nz"]


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_checkpoints_are_one_line_everywhere(tmp_path, good_checkpoint, kind):
    path = damaged(kind, good_checkpoint, tmp_path)
    with pytest.raises(checkpoint.CheckpointError) as caught:
        from minigan import models
        models.load_generator(path)
    assert str(path) in str(caught.value) and ("pickled" not in str(caught.value))
    one_line_error(demo("mnist_gan.py", "--sample", path, "--out", tmp_path / "s"), str(path))
    one_line_error(demo("mnist_gan.py", "--dry-run", "--resume", path, "--out", tmp_path / "r"), str(path))
    one_line_error(demo("evaluate.py", path, "-n", "10"), str(path))


def test_checkpoint_load_raises_its_documented_error_for_a_bad_zip(tmp_path, good_checkpoint):
    path = damaged("truncated", good_checkpoint, tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="damaged"):
        checkpoint.load(path)
    with zipfile.ZipFile(tmp_path / "no_npy.npz", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(checkpoint.CheckpointError, match="no 'meta' entry"):
        checkpoint.load(tmp_path / "no_npy.npz")


def test_a_checkpoint_of_another_architecture_is_one_line(tmp_path, good_checkpoint):
    r = demo("mnist_gan.py", "--dry-run", "--resume", good_checkpoint, "--nz", "64", "--out", tmp_path)
    one_line_error(r, "saved with nz=100, this run has nz=64")
    r = demo("mnist_gan.py", "--dry-run", "--resume", good_checkpoint, "--sn", "--out", tmp_path / "b")
    one_line_error(r, "saved with sn=False, this run has sn=True")


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "expected --lr > 0 (finite), got nan"),
    (["--lr", "inf"], "expected --lr > 0 (finite), got inf"),
    (["--seed", "-1"], "--seed must be at least 0, got -1"),
    (["--mmd-weight", "nan"], "--mmd-weight nan: expected a finite weight >= 0"),
    (["--mmd-weight", "inf"], "--mmd-weight inf: expected a finite weight >= 0"),
    (["--sample", "missing.npz"], "--sample: no checkpoint file missing.npz"),
    (["--pack", "3"], "--pack 3: expected --batch-size to be a multiple of it, got 128"),
    (["--ema", "1.5"], "--ema 1.5: expected a decay in [0, 1)"),
])
def test_bad_flag_values_are_refused_before_any_data_is_loaded(tmp_path, args, message):
    r = demo("mnist_gan.py", *args, "--data-dir", tmp_path / "no-such-folder", "--out", tmp_path / "o")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_batch_size_larger_than_the_data_is_one_line(tmp_path):
    write_split(tmp_path / "digits", "train", n=20)
    r = demo("mnist_gan.py", "--data-dir", tmp_path / "digits", "--batch-size", "64", "--out", tmp_path / "o")
    one_line_error(r, "--batch-size 64: expected at most the 20 images")


def test_out_that_is_a_file_or_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    r = demo("mnist_gan.py", "--dry-run", "--out", tmp_path / "file")
    assert r.returncode == 2 and "--out" in r.stderr and "expected a folder, found a file" in r.stderr
    one_line_error(demo("mnist_gan.py", "--dry-run", "--out", "/proc/minigan-run"), "cannot write")


def _tmpfs(path, options):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); "
                    f"the fault-injected test covers a full disk")


@pytest.fixture
def mounts():
    made = []
    yield made
    for m in made:
        subprocess.run(["umount", str(m)], capture_output=True)


def test_a_read_only_file_system_is_one_line(tmp_path, mounts):
    ro = tmp_path / "ro"
    _tmpfs(ro, "ro,size=1m")
    mounts.append(ro)
    one_line_error(demo("mnist_gan.py", "--dry-run", "--out", ro / "run"), "cannot write", "Read-only file system")


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, mounts):
    small = tmp_path / "small"
    _tmpfs(small, "size=40m")  # room for one 30 MB checkpoint (full width), not for the next beside it
    mounts.append(small)
    r = demo("mnist_gan.py", "--dry-run", "--width", "1", "--out", small / "run", "--epochs", "3")
    one_line_error(r, "cannot write", "No space left on device")
    (good,) = checkpoint.listed(small / "run" / "checkpoints")
    checkpoint.load_run(good)
    assert not list((small / "run" / "checkpoints").glob(".ckpt-*"))


def test_a_full_disk_fault_injected_in_the_trainer(tmp_path, monkeypatch):
    t = make(tmp_path)
    t.fit(ring(), epochs=1, batch_size=32)
    good = latest_checkpoint(tmp_path)

    def disk_full(f, **arrays):
        f.write(b"part of a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        t.fit(ring(), epochs=2, batch_size=32)
    monkeypatch.undo()
    assert checkpoint.listed(tmp_path / "checkpoints") == [good]
    assert not list((tmp_path / "checkpoints").glob(".ckpt-*"))


def test_resuming_mid_epoch_with_another_batch_size_is_one_line(tmp_path):
    write_split(tmp_path / "digits", "train", n=400)  # 100 steps an epoch: the stop lands inside one
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(DEMOS / "mnist_gan.py"), "--data-dir", str(tmp_path / "digits"),
                             "--batch-size", "4", "--epochs", "1000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "log.csv").exists() and len((out / "log.csv").read_text().splitlines()) > 3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    _, meta = checkpoint.load_run(checkpoint.listed(out / "checkpoints")[-1])
    assert meta["step_in_epoch"] > 0  # stopped inside an epoch
    r = demo("mnist_gan.py", "--data-dir", tmp_path / "digits", "--batch-size", "8", "--resume", "--out", out)
    one_line_error(r, "it stopped mid-epoch with --batch-size 4; resume with that, got 8")


def test_resuming_with_another_learning_rate_is_taken_and_recorded(tmp_path):
    out = tmp_path / "out"
    assert demo("mnist_gan.py", "--dry-run", "--out", out, "--lr", "2e-4").returncode == 0
    r = demo("mnist_gan.py", "--dry-run", "--out", out, "--resume", "--epochs", "2", "--lr", "1e-3", "--beta1", "0.6")
    assert r.returncode == 0, r.stderr
    assert "lr changed from 0.0002 to 0.001 at step 3" in r.stdout and "beta1 changed from 0.5 to 0.6" in r.stdout
    _, meta = checkpoint.load_run(checkpoint.listed(out / "checkpoints")[-1])
    assert {(c["option"], c["old"], c["new"], c["step"]) for c in meta["changes"]} == {
        ("lr", 2e-4, 1e-3, 3), ("beta1", 0.5, 0.6, 3)}
    assert meta["config"]["lr"] == 1e-3
    help_text = demo("mnist_gan.py", "--help").stdout
    assert "taken from the resume on and recorded in the" in help_text


@pytest.mark.parametrize("script, args, message", [
    ("mixture_gan.py", ["--steps", "0"], "--steps must be at least 1, got 0"),
    ("mixture_gan.py", ["--lr", "nan"], "expected --lr > 0 (finite), got nan"),
    ("autoencoder.py", ["--lr", "-1"], "expected --lr > 0 (finite), got -1.0"),
    ("autoencoder.py", ["--data-dir", "/no/such"], "--data-dir /no/such"),
    ("train_classifier.py", ["--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("train_classifier.py", ["--data-dir", "/no/such", "--out", "/tmp/w.npz"], "--data-dir /no/such"),
    ("evaluate.py", ["missing.npz"], "no checkpoint file missing.npz"),
])
def test_every_demo_answers_a_mistake_in_one_line(script, args, message):
    r = demo(script, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith(script.split(".")[0]) or
                script in line]) >= 1


def test_a_feature_layer_that_does_not_exist_is_one_line(tmp_path):
    r = demo("mnist_gan.py", "--dry-run", "--feature-layer", "40", "--feature-matching", "1", "--out", tmp_path)
    one_line_error(r, "--feature-layer 40: expected the index of one of D's layers 0..5", "6 Dense")
