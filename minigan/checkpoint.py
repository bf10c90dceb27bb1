"""Checkpoints: one .npz of plain arrays plus a JSON `meta` entry, written atomically.

Arrays are stored under names like "G/3.W", "D/1.running_mean", "optim_G/m/3.W"; `meta`
holds the epoch, step, flags and RNG state. Loading uses allow_pickle=False, so opening a
checkpoint from someone else cannot run their code.
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import backend


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside `path`; when the block ends without an error, move it into
    place with os.replace (atomic on one file system), else delete it. A crash mid-write never
    leaves a half-written `path`, and an earlier file of that name stays intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part" + path.suffix)
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
    `path` via a temporary file in the same folder and os.replace: a crash mid-write leaves
    the previous file intact."""
    host = {k: backend.to_host(v) for k, v in arrays.items()}
    if "meta" in host:
        raise ValueError("checkpoint.save: 'meta' is reserved for the JSON metadata")
    host["meta"] = np.array(json.dumps(meta))
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **host)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def load(path):
    """(arrays as NumPy arrays, meta dict) from a file written by save()."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable minigan checkpoint ({e})") from e
    if "meta" not in arrays:
        raise ValueError(f"{path}: not a minigan checkpoint (no 'meta' entry)")
    return arrays, json.loads(str(arrays.pop("meta")))


def subset(arrays, prefix):
    """The arrays under "prefix/", with the prefix removed: e.g. subset(a, "G") -> G's state_dict."""
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}


def with_prefix(arrays, prefix):
    return {f"{prefix}/{k}": v for k, v in arrays.items()}
