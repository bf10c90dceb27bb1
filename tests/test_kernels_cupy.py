"""The kernels' CuPy path: the same code as NumPy's, tiles included. Every CI run takes it through
the CuPy-shaped double (tests/fakecupy.py); the `cuda` cases run it on a real device."""
import sys

import numpy as np
import pytest

import fakecupy
from minigan import backend
from minigan.gradcheck import rel_error
from minigan.kernels import gaussian_kernel_matrix, gaussian_kernel_sum, mmd2, mmd_test

from test_kernels import tiny_tiles


@pytest.fixture(params=["double", pytest.param("cuda", marks=pytest.mark.cuda)])
def cp(request, monkeypatch):
    if request.param == "double":
        monkeypatch.setitem(sys.modules, "cupy", fakecupy)
        backend._check_cupy.cache_clear()
        fakecupy.counts.reset()
        yield fakecupy
        backend._check_cupy.cache_clear()
    else:
        yield backend.get("cupy")


def _data(dtype, n=70, m=50, d=6):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, d)).astype(dtype), (rng.standard_normal((m, d)) + 0.4).astype(dtype)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("tiles", [False, True])
def test_exact_paths_equal_numpy_in_tiles_too(cp, dtype, tol, tiles):
    X, Y = _data(dtype)
    s = [1.0, 2.0, 4.0]
    Xg, Yg = cp.asarray(X), cp.asarray(Y)
    with tiny_tiles(16, parallel=False) if tiles else tiny_tiles(1 << 12, parallel=False, kept=True):
        for unbiased in (False, True):
            v, dX = mmd2(Xg, Yg, s, unbiased=unbiased, check_finite=False)
            v0, dX0 = mmd2(X, Y, s, unbiased=unbiased, backend="numpy")
            assert backend.is_cupy(v) and backend.is_cupy(dX) and dX.dtype == dtype
            assert abs(float(v) - float(v0)) <= tol and rel_error(backend.to_host(dX), dX0) <= 10 * tol
        w = np.random.default_rng(1).standard_normal((len(Y), 2)).astype(dtype)
        np.testing.assert_allclose(backend.to_host(gaussian_kernel_sum(Xg, Yg, s, cp.asarray(w))),
                                   gaussian_kernel_sum(X, Y, s, w, backend="numpy"), rtol=10 * tol)
        np.testing.assert_allclose(backend.to_host(gaussian_kernel_sum(Xg, Xg, s)),
                                   gaussian_kernel_sum(X, X, s, backend="numpy"), rtol=10 * tol)
        np.testing.assert_allclose(backend.to_host(gaussian_kernel_matrix(Xg, Yg, s)),
                                   gaussian_kernel_matrix(X, Y, s, backend="numpy"), rtol=10 * tol, atol=tol)


def test_a_tiled_mmd2_reads_nothing_from_the_device(cp):
    if cp is not fakecupy:
        pytest.skip("the double counts device reads")
    X, Y = _data(np.float32)
    Xg, Yg = cp.asarray(X), cp.asarray(Y)
    mmd2(Xg, Yg, [1.0, 2.0], check_finite=False)  # compiles, caches the bandwidths' constants
    cp.counts.reset()
    with tiny_tiles(16, parallel=False):
        mmd2(Xg, Yg, [1.0, 2.0], check_finite=False)
        mmd2(Xg, Yg, [1.0, 2.0], estimator="linear", check_finite=False)
    assert cp.counts.reads == 0


@pytest.mark.parametrize("estimator", ["rff", "linear"])
def test_estimators_equal_numpy(cp, estimator):
    X, Y = _data(np.float64)
    v, dX = mmd2(cp.asarray(X), cp.asarray(Y), [1.0, 3.0], estimator=estimator, features=64, seed=2)
    v0, dX0 = mmd2(X, Y, [1.0, 3.0], estimator=estimator, features=64, seed=2)
    assert abs(float(v) - float(v0)) <= 1e-12 and rel_error(backend.to_host(dX), dX0) <= 1e-12


def test_mmd_test_equals_numpy(cp):
    X, Y = _data(np.float64, 30, 25)
    got = mmd_test(cp.asarray(X), cp.asarray(Y), permutations=20, seed=3)
    want = mmd_test(X, Y, permutations=20, seed=3)
    assert got.p_value == want.p_value and abs(got.mmd2 - want.mmd2) <= 1e-12
    assert np.allclose(got.sigmas, want.sigmas, rtol=1e-12)
