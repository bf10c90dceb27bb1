"""A NumPy-backed stand-in for CuPy, so that every CI run (no GPU) checks minigan's `xp` discipline.

It keeps CuPy's array type rules and counts what a GPU would charge for:
- an implicit conversion to NumPy (np.asarray(a), a NumPy ufunc or function on it, a NumPy
  ndarray mixed into its operations) raises TypeError, as CuPy 13/14 do;
- `np.*` calls on its arrays dispatch to it (__array_ufunc__, __array_function__);
- reductions stay on the "device" (0-d arrays, not NumPy scalars);
- `counts.reads` counts device -> host reads (.get(), float(), int(), bool(), .item()), and
  `counts.ops` the operations (each one a kernel launch on a GPU).
`ElementwiseKernel` runs the few kernels minigan defines, by name, through NumPy: it checks
their arguments and outputs, not their CUDA source.

This is a guard for the xp discipline, not a claim that the GPU works: only a run on a GPU
(benchmarks/gpu_check.sh) shows that.
"""
import operator
import sys
import types

import numpy as _np


class _Counts:
    def __init__(self):
        self.reads = self.ops = self.uploads = 0

    def reset(self):
        self.__init__()


counts = _Counts()


def _unwrap(x, *, strict=True):
    """The NumPy array inside a fake array; plain NumPy ndarrays are refused as CuPy refuses them."""
    if isinstance(x, ndarray):
        return x._a
    if strict and isinstance(x, _np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}: a NumPy array mixed into a CuPy operation")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, strict=strict) for v in x)
    if isinstance(x, slice):
        return x
    return x


def _wrap(x):
    if isinstance(x, _np.ndarray):
        return ndarray(x)
    if isinstance(x, _np.generic):  # a reduction: CuPy keeps it on the device, 0-d
        return ndarray(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _call(fn, args, kwargs):
    counts.ops += 1
    return _wrap(fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))


class ndarray:
    __module__ = "cupy"  # what minigan.backend.is_cupy looks at

    def __init__(self, a):
        self._a = a

    # ---- CuPy's rules --------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
                        "construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        return _call(func, args, kwargs)

    def get(self):
        counts.reads += 1
        return self._a.copy()

    def _read(self):
        counts.reads += 1
        return self._a

    def __float__(self):
        return float(self._read())

    def __int__(self):
        return int(self._read())

    def __index__(self):
        return operator.index(self._read())

    def __bool__(self):
        return bool(self._read())

    def item(self):
        return self._read().item()

    def tolist(self):
        return self._read().tolist()

    def __repr__(self):
        return f"fakecupy.ndarray({self._read()!r})"

    # ---- plain attributes ------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray(row) for row in self._a)

    def __getitem__(self, key):
        return _call(operator.getitem, (self, key), {})

    def __setitem__(self, key, value):
        counts.ops += 1
        self._a[_unwrap(key)] = _unwrap(value)

    def __getattr__(self, name):  # methods: reshape, sum, astype, copy, ...
        if name.startswith("__"):  # never hand NumPy the buffer (__array_interface__, __array_struct__)
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)
        return lambda *args, **kwargs: _call(attr, args, kwargs)

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())


def _binary(op, reflected=False):
    def method(self, other):
        a, b = (other, self) if reflected else (self, other)
        return _call(op, (a, b), {})
    return method


def _inplace(ufunc):
    def method(self, other):
        counts.ops += 1
        ufunc(self._a, _unwrap(other), out=self._a, casting="same_kind")
        return self
    return method


for _name, _op in {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
                   "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow,
                   "matmul": operator.matmul, "and": operator.and_, "or": operator.or_, "xor": operator.xor}.items():
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _uf in {"add": _np.add, "sub": _np.subtract, "mul": _np.multiply, "truediv": _np.divide,
                   "pow": _np.power}.items():
    setattr(ndarray, f"__i{_name}__", _inplace(_uf))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_name}__", _binary(getattr(operator, _name)))
ndarray.__neg__ = lambda self: _call(operator.neg, (self,), {})
ndarray.__abs__ = lambda self: _call(operator.abs, (self,), {})
ndarray.__invert__ = lambda self: _call(operator.invert, (self,), {})
ndarray.__hash__ = None


# ---- the module's functions -------------------------------------------------------------------
def asarray(x, dtype=None):
    if isinstance(x, ndarray):
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    counts.uploads += 1
    return ndarray(_np.array(x, dtype=dtype))


array = asarray


def get_array_module(*arrays):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in arrays) else _np


def __getattr__(name):  # zeros, empty, exp, einsum, matmul, concatenate, float32, ... from NumPy
    attr = getattr(_np, name)
    if isinstance(attr, type) or not callable(attr):
        return attr  # dtypes and constants
    return lambda *args, **kwargs: _call(attr, args, kwargs)


class ElementwiseKernel:
    """Runs minigan's own kernels by name through NumPy (one op each, as one launch on a GPU)."""

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        if name not in _KERNELS:
            raise NotImplementedError(f"fakecupy: no emulation of the kernel {name!r}")
        self.name, self.n_in = name, len(in_params.split(","))

    def __call__(self, *args):
        counts.ops += 1
        return _KERNELS[self.name](*[_unwrap(a, strict=False) for a in args])


def _gaussian_tile(xx, yy, neg_inv_2s2, scale, n_sigmas, m, has_diag, off, upper, write, G, K):
    rows, cols = _np.arange(G.shape[0])[:, None], _np.arange(G.shape[1])[None, :]
    d = _np.where(has_diag & (cols == rows + off), 0, _np.maximum(xx + yy - 2 * G, 0))
    e = [_np.exp(d * neg_inv_2s2[s]) for s in range(int(n_sigmas))]
    keep = (cols > rows + off) | (not upper)
    K[...] = _np.where(keep, sum(e), 0)
    if write:
        G[...] = _np.where(keep, sum(e_s * scale[s] for s, e_s in enumerate(e)), 0)
    return ndarray(G), ndarray(K)


def _im2col(x, C, H, W, N, Ho, Wo, k, s, p, col):
    from minigan.layers.conv import im2col_sliced
    im2col_sliced(x.reshape(N, C, H, W), int(k), int(s), int(p), col)
    return ndarray(col)


def _col2im(col, C, H, W, N, Ho, Wo, k, s, p, x):
    from minigan.layers.conv import col2im_sliced
    x[...] = col2im_sliced(col.reshape(C, k, k, N, Ho, Wo), (N, C, H, W), int(s), int(p)).reshape(x.shape)
    return ndarray(x)


def _probe(x, y=None):
    return ndarray(x + x)


_KERNELS = {"minigan_gaussian_tile": _gaussian_tile, "minigan_im2col": _im2col, "minigan_col2im": _col2im,
            "minigan_probe": _probe}


class _Device:
    def synchronize(self):
        pass


cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                             Device=lambda *a: _Device())
__version__ = "0.0-fake"
