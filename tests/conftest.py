import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One process per core runs the tests (pytest.ini's -n auto): a BLAS spinning two threads in
    # each would fight the other worker for the cores, and OpenBLAS's waiting threads then make a
    # small matmul tens of times slower. The demos these tests start inherit the setting.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MINIGAN_THREADS"):
        os.environ[name] = "1"  # MINIGAN_THREADS: minigan's worker threads (tests that need more say so)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from minigan import backend  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)  # a BLAS that was loaded before the variables above were read

# Gradient checks take a few hundred milliseconds an example: no per-example deadline.
settings.register_profile("default", deadline=None, max_examples=50,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
# The real MNIST test split, for the few tests that need real digits: $MINIGAN_TEST_MNIST, or the
# development machines' copy beside the repository (never copied into it).
SHARED_MNIST = Path(os.environ.get("MINIGAN_TEST_MNIST") or REPO.parent / "shared" / "data" / "mnist")


def pytest_collection_modifyitems(config, items):
    ok, reason = backend.cupy_available()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA device: {reason}")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def mnist_dir():
    """A folder holding the real MNIST test split (t10k-*-ubyte.gz), or a skip saying where it was sought."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"the real MNIST test split is not at {SHARED_MNIST} (set MINIGAN_TEST_MNIST to a folder holding "
                    f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz)")
    return SHARED_MNIST


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---- the demos, run in this process ----------------------------------------------------------------
DEMOS = REPO / "demos"
_loaded = {}


def minibatch_discrimination_case(n, a, b, c, seed):
    """(layer, x, |M_i − M_j| for every pair) for MinibatchDiscrimination(a, b, c) on n samples,
    with T scaled so that the pairs' L1 distances stay where their exps are resolvable."""
    from minigan.layers import MinibatchDiscrimination
    rng = np.random.default_rng(seed)
    layer = MinibatchDiscrimination(a, b, c, rng=seed)
    layer.params["T"] = rng.standard_normal(layer.params["T"].shape) / np.sqrt(a * c)
    x = rng.standard_normal((n, a))
    M = (x @ layer.params["T"]).reshape(n, b, c)
    return layer, x, np.abs(M[:, None] - M[None, :])


def load_demo(script):
    """demos/<script> as a module (once per test process): its main(argv) is the command line."""
    import importlib.util
    import sys
    if script not in _loaded:
        if str(DEMOS) not in sys.path:
            sys.path.insert(0, str(DEMOS))  # the demos import each other (cures.py uses mixture_gan)
        spec = importlib.util.spec_from_file_location(f"demo_{script[:-3]}", DEMOS / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[script] = module
    return _loaded[script]


def run_demo(script, *args, cwd=None):
    """`python demos/<script> ARGS` in this process: .returncode, .stdout, .stderr, as
    subprocess.run gives them (argparse's errors included). A test that needs a process of its
    own (a signal, a kill, two processes at once) uses subprocess instead."""
    import contextlib
    import io
    import os
    import types
    import sys
    out, err = io.StringIO(), io.StringIO()
    previous, argv = os.getcwd(), sys.argv
    sys.argv = [script, *map(str, args)]  # argparse names the program from it, as the shell would
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = load_demo(script).main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(previous)
        sys.argv = argv
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture
def fake(monkeypatch):
    """tests/fakecupy.py standing in for CuPy (imported as `cupy`), its counts at zero."""
    import sys

    import fakecupy
    monkeypatch.setitem(sys.modules, "cupy", fakecupy)
    backend._check_cupy.cache_clear()
    fakecupy.counts.reset()
    yield fakecupy
    backend._check_cupy.cache_clear()
