"""The one module that imports CuPy, and only when asked for it.

Engine code never names numpy or cupy directly for array work: it asks the arrays it
was given which module they belong to (``xp = xp_of(x)``), so one code path serves both.
"""
import functools

import numpy as np

_CUPY_HINT = ("install the CuPy extra for your CUDA version: "
              "pip install -e '.[cuda12]' (or '.[cuda13]')")


def _import_cupy():
    """Import CuPy and check that it can really run: a CUDA device, one compiled elementwise
    kernel (NVRTC) and one cuBLAS matmul. A clear error names what is missing."""
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(f"backend 'cupy' asked for, but CuPy is not installed: {_CUPY_HINT}") from e
    _check_cupy(cupy)
    return cupy


@functools.cache
def _check_cupy(cupy):
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken: CuPy raises its own runtime error
        raise RuntimeError(f"backend 'cupy' asked for, but no CUDA device was found ({_first_line(e)})") from e
    if count == 0:
        raise RuntimeError("backend 'cupy' asked for, but no CUDA device was found")
    try:
        double = cupy.ElementwiseKernel("T x", "T y", "y = x + x", "minigan_probe")
        a = cupy.ones((2, 2), dtype=cupy.float32)
        if float((double(a) @ a).sum()) != 16.0:
            raise RuntimeError("a 2x2 matmul gave a wrong result")
    except Exception as e:  # NVRTC or cuBLAS missing: CuPy installed without the CUDA toolkit libraries
        raise RuntimeError(f"backend 'cupy' asked for: CuPy found a GPU but cannot compile a kernel or run "
                           f"cuBLAS ({_first_line(e)}); install the CUDA libraries with the [ctk] extra, e.g. "
                           f"pip install 'cupy-cuda12x[ctk]' (or cupy-cuda13x[ctk])") from e


def _first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def cupy_available():
    """(True, '') when CuPy, a CUDA device, its kernel compiler and cuBLAS can be used, else
    (False, the reason)."""
    try:
        _import_cupy()
    except RuntimeError as e:
        return False, str(e)
    return True, ""


def get(name):
    """The array module for a backend name: 'numpy' -> numpy, 'cupy' -> cupy."""
    if name == "numpy":
        return np
    if name == "cupy":
        return _import_cupy()
    raise ValueError(f"backend: expected 'numpy' or 'cupy', got {name!r}")


def is_cupy(x):
    """True when x is a CuPy array (checked without importing CuPy)."""
    return type(x).__module__.split(".")[0] == "cupy"


def xp_of(*arrays):
    """The module (numpy or cupy) that all of `arrays` live in; TypeError if they disagree."""
    kinds = {is_cupy(a) for a in arrays if a is not None}
    if len(kinds) > 1:
        raise TypeError("arrays on two different backends (numpy and cupy): "
                        "move them to one with minigan.backend.to_backend")
    if kinds == {True}:
        import cupy
        return cupy
    return np


def to_backend(x, xp, dtype=None):
    """x as an array of module `xp` (numpy or cupy), optionally cast to `dtype`."""
    if xp is np:
        x = to_host(x)
        return x if dtype is None else x.astype(dtype, copy=False)
    return xp.asarray(x, dtype=dtype)


def to_host(x):
    """x as a NumPy array (copies from the device when x is a CuPy array)."""
    return x.get() if is_cupy(x) else np.asarray(x)
