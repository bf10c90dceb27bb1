"""Checkpoints: one .npz of plain arrays plus a JSON `meta` entry, written atomically; the
folder a run owns.

Arrays are stored under names like "G/3.W", "D/1.running_mean", "optim_G/m/3.W"; `meta`
holds the epoch, step, flags and RNG state. Loading uses allow_pickle=False, so opening a
checkpoint from someone else cannot run their code, and every malformed file is a
CheckpointError (a ValueError) that names the file and what is wrong, raised before anything
is allocated from the file's metadata.

Names: a run writes ckpt-eEEE-sSSSSSSS.npz (epoch, step) and orders them by the step parsed
from the name, never as text; it prunes only names of that form. Temporary files start with
"." and end in ".tmp", so no pattern of the run's own matches a half-written file.
"""
import contextlib
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from . import backend

NAME = re.compile(r"^ckpt-e(\d{3,})-s(\d{7,})\.npz$")
MAX_NZ = 100_000  # a latent size larger than this is a damaged or crafted file, not a model


class CheckpointError(ValueError):
    """A file that is not a readable minigan checkpoint, or one that does not fit the model."""


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside `path` (".<name>.<random>.tmp"); when the block ends
    without an error, move it into place with os.replace (atomic on one file system), else
    delete it. A crash mid-write never leaves a half-written `path`, and an earlier file of
    that name stays intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save(path, arrays, meta):
    """Write {name: array} (any backend; copied to the host) and a JSON-able `meta` dict to
    `path` via a temporary file in the same folder and os.replace: a crash or a full disk
    mid-write leaves the previous file intact."""
    host = {k: backend.to_host(v) for k, v in arrays.items()}
    if "meta" in host:
        raise ValueError("checkpoint.save: 'meta' is reserved for the JSON metadata")
    host["meta"] = np.array(json.dumps(meta))
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **host)
            f.flush()
            os.fsync(f.fileno())
        _pause_for_tests()
    return Path(path)


_saves = [0]


def _pause_for_tests():
    """A test hook: with MINIGAN_TEST_PAUSE_SAVE="N:FILE", the N-th save of this process touches
    FILE and waits, its data written but not yet moved into place (for killing a writer there)."""
    hook = os.environ.get("MINIGAN_TEST_PAUSE_SAVE")
    if not hook:
        return
    _saves[0] += 1
    n, marker = hook.split(":", 1)
    if _saves[0] == int(n):
        Path(marker).touch()
        time.sleep(120)


def load(path):
    """(arrays as NumPy arrays, meta dict) from a file written by save(); CheckpointError for
    anything else (missing, empty, truncated, bit-flipped, not an .npz, pickled objects, an
    array larger than the bytes stored for it, no or bad metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"{path}: the file is empty")
    if head[:2] != b"PK":
        raise CheckpointError(f"{path}: not a minigan checkpoint (not an .npz file: it starts with {head!r})")
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {name[:-4]: _read_member(zf, name) for name in zf.namelist() if name.endswith(".npy")}
    except CheckpointError as e:
        raise CheckpointError(f"{path}: not a readable minigan checkpoint ({e})") from None
    except Exception as e:  # anything a damaged zip or .npy header raises
        raise CheckpointError(f"{path}: not a readable minigan checkpoint (damaged: "
                              f"{type(e).__name__}: {e})") from e
    if "meta" not in arrays:
        raise CheckpointError(f"{path}: not a minigan checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError as e:
        raise CheckpointError(f"{path}: its 'meta' entry is not valid JSON ({e})") from e
    return arrays, meta


def load_run(path):
    """load() for a training run's checkpoint, its metadata checked (check_meta)."""
    arrays, meta = load(path)
    check_meta(meta, path)
    return arrays, meta


def _read_member(zf, name):
    """One .npy member, its header checked before any data is read: no pickled objects, and
    no more bytes declared than the member holds."""
    with zf.open(name) as f:
        fmt = np.lib.format
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(f)
        if dtype.hasobject:
            raise CheckpointError(f"{name} holds pickled objects, which are never loaded")
        declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if declared > zf.getinfo(name).file_size:
            raise CheckpointError(f"{name} declares shape {shape} ({declared:,} bytes) but holds only "
                                  f"{zf.getinfo(name).file_size:,}: damaged")
    with zf.open(name) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def check_meta(meta, path):
    """The metadata's types and ranges, before anything is built from it."""
    def bad(what):
        raise CheckpointError(f"{path}: damaged metadata: {what}")

    if not isinstance(meta, dict):
        bad(f"expected a JSON object, got {type(meta).__name__}")
    for key in ("epoch", "step_in_epoch", "step"):
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            bad(f"expected {key} to be an integer >= 0, got {v!r}")
    config = meta.get("config")
    if not isinstance(config, dict):
        bad(f"expected a 'config' object, got {config!r}")
    nz = config.get("nz")
    if not isinstance(nz, int) or isinstance(nz, bool) or not 1 <= nz <= MAX_NZ:
        bad(f"expected config.nz to be an integer in 1..{MAX_NZ:,}, got {nz!r}")
    if not isinstance(meta.get("rng_state"), dict):
        bad("expected an 'rng_state' object")


def subset(arrays, prefix):
    """The arrays under "prefix/", with the prefix removed: e.g. subset(a, "G") -> G's state_dict."""
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}


def with_prefix(arrays, prefix):
    return {f"{prefix}/{k}": v for k, v in arrays.items()}


# ---- a run's checkpoint folder --------------------------------------------------------------
def name_for(epoch, step):
    return f"ckpt-e{epoch:03d}-s{step:07d}.npz"


def listed(folder):
    """The checkpoints a run wrote in `folder` (names of the form name_for makes), oldest
    first by the step in the name (then the epoch); other files are not a run's."""
    found = []
    for p in Path(folder).glob("ckpt-*.npz"):
        m = NAME.match(p.name)
        if m and p.is_file():
            found.append(((int(m.group(2)), int(m.group(1))), p))
    return [p for _, p in sorted(found)]


def prune(folder, keep):
    """Delete all but the newest `keep` of the run's checkpoints, and temporary files that a
    killed writer left behind."""
    for old in listed(folder)[:-keep]:
        old.unlink()
    clean_leftovers(folder)


def clean_leftovers(folder):
    for tmp in Path(folder).glob(".ckpt-*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def newest_loadable(folder, log=print):
    """The newest checkpoint in `folder` that loads, saying so when a newer one is damaged;
    None when there is none. Raises CheckpointError when there are some and none loads."""
    found = listed(folder)
    for path in reversed(found):
        try:
            load_run(path)
            return path
        except CheckpointError as e:
            log(f"skipping a damaged checkpoint: {e}")
    if found:
        raise CheckpointError(f"{folder}: none of the {len(found)} checkpoints could be read")
    return None


# ---- whose folder is it -------------------------------------------------------------------
RUN_RECORD = "run.json"  # written when a run starts: {"dry_run": bool, "started": ..., "argv": [...]}


class FolderInUse(CheckpointError):
    """A new run asked to write into a folder that holds another run's files."""


def run_files(folder):
    """The files of a training run in `folder`, by the names a run writes (nothing else counts)."""
    folder = Path(folder)
    named = [folder / n for n in (RUN_RECORD, "log.csv", "metrics.jsonl", "losses.png")]
    return ([p for p in named if p.is_file()] + sorted(folder.glob("samples_epoch*.png"))
            + listed(folder / "checkpoints"))


def claim_folder(folder, *, overwrite=False, dry_run=False, hint="", log=print):
    """Make `folder` the home of a new run (call it holding the folder's RunLock): refuse, with
    FolderInUse, a folder that holds another run's files (a run's names only: other files are
    left alone), unless `overwrite` says to delete them, or both the old run and this one are
    dry runs (synthetic data: nothing to lose). Then write the run record."""
    folder = Path(folder)
    found = run_files(folder)
    if found:
        previous = _read_record(folder)
        if not (overwrite or (dry_run and previous.get("dry_run"))):
            ckpts = listed(folder / "checkpoints")
            what = (f"checkpoints up to {ckpts[-1].name}" if ckpts else
                    ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else ""))
            raise FolderInUse(f"{folder} holds another run ({what}){'; ' + hint if hint else ''}")
        for p in found:
            p.unlink()
        log(f"removed the previous {'dry run' if previous.get('dry_run') else 'run'}'s files from {folder}")
    record = {"dry_run": bool(dry_run), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv}
    with atomic_file(folder / RUN_RECORD) as tmp:
        Path(tmp).write_text(json.dumps(record) + "\n")


def _read_record(folder):
    try:
        record = json.loads((Path(folder) / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class RunLocked(RuntimeError):
    """Another live process owns this output folder."""


class RunLock:
    """`with RunLock(folder):` owns `folder` for one run: a `.lock` file holding the owner's PID,
    created exclusively. A lock whose process is gone (a killed run) is taken over."""

    def __init__(self, folder):
        self.path = Path(folder) / ".lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._owner()
                young = time.time() - self.path.stat().st_mtime < 10 if self.path.exists() else False
                if (owner is not None and _alive(owner)) or (owner is None and young):  # young: being written
                    raise RunLocked(f"{self.path.parent} is in use by another run (process {owner}); "
                                    f"wait for it, stop it, or choose another --out")
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            clean_leftovers(self.path.parent / "checkpoints")
            return self
        raise RunLocked(f"{self.path}: could not take the lock (another run took it first)")

    def _owner(self):
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def __exit__(self, *exc):
        if self._owner() == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
