"""What every layer shares: the contract, input checks, randomness, moving between backends,
and the reference switch."""
import contextlib
import inspect
import math
import os
import threading

import numpy as np

from .. import backend


class Layer:
    """The layer contract, in one place. Sequential and gradcheck check it after every call
    and name the layer and what it missed; a subclass whose signatures break it is refused
    when the class is defined.

    __init__    Sets ``self.params`` and ``self.grads``: dicts with the same keys, each grad a
                zero array of its parameter's shape (optimizers read both). ``self.buffers``:
                state that is saved but not trained (BatchNorm's running statistics).
                Hyperparameters after the sizes are keyword-only.
    output_shape(in_shape)
                The output shape for an input shape, or ValueError for an input the layer
                cannot take. There is no default: a layer that keeps the shape says so
                (``Elementwise`` in activations.py).
    forward(x, training=True)
                Starts with ``self.check_input(x)``, which validates x and records
                ``self.x_shape`` and ``self.y_shape``. Caches in ``self.cache`` exactly what
                backward needs, and returns a new array of ``y_shape`` in x's dtype.
    backward(dy, param_grads=True)
                Starts with ``self.check_grad(dy)``. Returns dx, of x's shape. With
                ``param_grads`` it puts a new array in ``self.grads[k]`` for every k in params;
                with ``param_grads=False`` it leaves ``self.grads`` as they were (for
                backpropagating through a network that is not trained in this pass: D in the
                generator's step).
    dtype       A layer computes in the dtype of its input and parameters (float32 to train,
                float64 in gradient checks) and refuses a mismatch (check_input).
    randomness  A layer that draws random numbers takes ``rng=`` (a seed or a Generator),
                keeps ``self.rng = init.as_generator(rng)`` and draws only through
                ``self.draw(sample)``: its state is saved with a run (Sequential.rng_states),
                and gradcheck holds one draw fixed for all its probes (``hold_draw``).

    backward_backward(dy, g, param_grads=True)
                Optional: the derivative of backward, for penalties on D's input gradient.
                After forward(x) and a backward(dy) that returned dx = B(x, θ, dy), g (x's
                shape) is ∂P/∂dx for some scalar P. Starts with ``self.check_double(dy, g)``.
                Returns (g_dy, g_x): g_dy = ∂P/∂dy (y's shape), g_x = ∂P/∂x through B's
                dependence on x, or None where B does not depend on x. With ``param_grads``
                it puts ∂P/∂θ_k (through B's dependence on θ) in a new ``self.grads[k]``
                for every k. The default refuses in one line.

    Parameters are read from ``self.params`` at every call, so assigning a new array there
    takes effect.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.cache = None
        self.x_shape = self.y_shape = None
        self.rng = None
        self.hold_draw = False
        self._draw = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for method, arg in (("forward", "training"), ("backward", "param_grads")):
            if arg not in inspect.signature(getattr(cls, method)).parameters:
                raise TypeError(f"{cls.__name__}.{method} must take `{arg}`: "
                                f"{method}(self, {'x, training=True' if arg == 'training' else 'dy, param_grads=True'})")

    def output_shape(self, in_shape):
        """The output shape for an input shape; raises ValueError for an input it cannot take."""
        raise NotImplementedError(f"{type(self).__name__} must define output_shape(in_shape): "
                                  f"the shape forward returns for an input of that shape")

    def forward(self, x, training=True):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x, training=True)")

    def backward(self, dy, param_grads=True):
        raise NotImplementedError(f"{type(self).__name__} must define backward(dy, param_grads=True)")

    def backward_backward(self, dy, g, param_grads=True):
        raise NotImplementedError(f"{self}: cannot be differentiated twice: it defines no "
                                  f"backward_backward(dy, g) (docs/backprop.md shows how)")

    def check_input(self, x):
        """Validate x (type, backend, dtype, shape) before any state changes; record and return
        y's shape."""
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            raise TypeError(f"{self}: expected an array, got {type(x).__name__}")
        if self.params:
            p = next(iter(self.params.values()))
            if backend.is_cupy(x) != backend.is_cupy(p):
                raise TypeError(f"{self}: input is a {type(x).__module__} array but the parameters "
                                f"are {type(p).__module__} arrays; move one with .to(...)")
            if x.dtype != p.dtype:
                raise TypeError(f"{self}: expected input dtype {p.dtype} (the parameters' dtype), "
                                f"got {x.dtype}")
        elif x.dtype.kind != "f":
            raise TypeError(f"{self}: expected a floating-point input, got dtype {x.dtype}")
        y_shape = tuple(self.output_shape(x.shape))
        self.x_shape, self.y_shape = tuple(x.shape), y_shape
        return y_shape

    def check_grad(self, dy):
        """Validate dy against the last forward's output before backward changes anything."""
        if self.y_shape is None:
            raise RuntimeError(f"{self}: backward called before forward (or forward did not start "
                               f"with self.check_input(x))")
        if tuple(dy.shape) != self.y_shape:
            raise ValueError(f"{self}: expected a gradient of shape {self.y_shape} "
                             f"(the last forward's output), got {tuple(dy.shape)}")

    def check_double(self, dy, g):
        """Validate backward_backward's dy (the last forward's output shape) and g (its input's)."""
        self.check_grad(dy)
        if not hasattr(g, "shape") or tuple(g.shape) != self.x_shape:
            got = tuple(g.shape) if hasattr(g, "shape") else type(g).__name__
            raise ValueError(f"{self}: expected g, the adjoint of dx, of the input's shape {self.x_shape}, "
                             f"got {got}")

    def draw(self, sample):
        """This forward's random numbers: sample(self.rng), on the host. While ``hold_draw`` is
        True the previous draw is returned again, so that gradcheck's probes all see one draw."""
        if self.rng is None:
            raise RuntimeError(f"{self}: draws random numbers but has no generator; set self.rng "
                               f"= init.as_generator(rng) in __init__")
        if not (self.hold_draw and self._draw is not None):
            self._draw = sample(self.rng)
        return self._draw

    def leaves(self):
        """The layers that do the work: this one (a Sequential yields its layers', nested ones too)."""
        yield self

    def named_parameters(self, prefix=""):
        """(name, layer, key) for each parameter; optimizers update layer.params[key]."""
        for k in self.params:
            yield prefix + k, self, k

    def to(self, xp=None, dtype=None):
        """Move params, grads and buffers to module `xp` (numpy/cupy) and/or cast to `dtype`."""
        xp = xp or backend.xp_of(*self.params.values(), *self.buffers.values())
        for d in (self.params, self.grads, self.buffers):
            for k, v in d.items():
                d[k] = backend.to_backend(v, xp, dtype)
        self.cache = None
        return self

    def __repr__(self):
        return f"{type(self).__name__}()"


def check_forward(layer, x, y):
    """After layer.forward(x) returned y: the contract's forward half, with an error naming
    the layer and what it missed (so a broken layer is blamed, not the next one)."""
    if layer.x_shape != tuple(x.shape):
        raise RuntimeError(f"{layer}: forward must start with self.check_input(x) (it records "
                           f"x_shape and y_shape for backward)")
    if not (hasattr(y, "shape") and hasattr(y, "dtype")):
        raise TypeError(f"{layer}: forward must return an array, returned {type(y).__name__}")
    if tuple(y.shape) != layer.y_shape:
        raise ValueError(f"{layer}: forward returned shape {tuple(y.shape)}, but output_shape"
                         f"({tuple(x.shape)}) says {layer.y_shape}")
    if y.dtype != x.dtype:
        raise TypeError(f"{layer}: forward returned dtype {y.dtype} for a {x.dtype} input; "
                        f"compute in the input's dtype")


def check_backward(layer, dx, param_grads):
    """After layer.backward(dy, param_grads) returned dx: the contract's backward half."""
    if not hasattr(dx, "shape") or tuple(dx.shape) != layer.x_shape:
        got = tuple(dx.shape) if hasattr(dx, "shape") else type(dx).__name__
        raise ValueError(f"{layer}: backward must return dx of the input's shape {layer.x_shape}, "
                         f"returned {got}")
    if param_grads:
        _check_param_grads(layer, "backward(dy, param_grads=True)")


def _check_param_grads(layer, call):
    """Each parameter has a gradient of its own shape in layer.grads after `call`."""
    for k, p in layer.params.items():
        g = layer.grads.get(k)
        if g is None or tuple(g.shape) != tuple(p.shape):
            raise ValueError(f"{layer}: {call} must set grads[{k!r}] to an array of shape {tuple(p.shape)}, "
                             f"found {'none' if g is None else tuple(g.shape)}")


def check_backward_backward(layer, g_dy, g_x, param_grads):
    """After layer.backward_backward(dy, g, param_grads) returned (g_dy, g_x): the contract's
    second-order half."""
    if not hasattr(g_dy, "shape") or tuple(g_dy.shape) != layer.y_shape:
        got = tuple(g_dy.shape) if hasattr(g_dy, "shape") else type(g_dy).__name__
        raise ValueError(f"{layer}: backward_backward must return g_dy of the output's shape "
                         f"{layer.y_shape}, returned {got}")
    if g_x is not None and (not hasattr(g_x, "shape") or tuple(g_x.shape) != layer.x_shape):
        got = tuple(g_x.shape) if hasattr(g_x, "shape") else type(g_x).__name__
        raise ValueError(f"{layer}: backward_backward must return g_x of the input's shape "
                         f"{layer.x_shape} or None, returned {got}")
    if param_grads:
        _check_param_grads(layer, "backward_backward(dy, g, param_grads=True)")


# ---- the reference switch -----------------------------------------------------------------
# Off (the default), NumPy runs the fast path: compiled im2col/col2im, LeakyReLU and BatchNorm
# passes, the convolutions' worker threads and kept scratch buffers.
# On, every layer runs the readable definitions on the same arrays: the strided-slice
# im2col/col2im of conv.py and a fresh array for every work buffer, so that what a debugger
# steps through is the code on the page. tests/test_reader_path.py holds the two equal.
_reference = os.environ.get("MINIGAN_REFERENCE", "") not in ("", "0")


def in_reference_mode():
    return _reference


_kept = threading.local()


def scratch(name, shape, like):
    """A work array for the length of one call (a convolution's column buffer), its contents
    overwritten by the next: one per name and thread, shared by every layer, grown to the largest
    size asked for. A fresh array of tens of MB costs the kernel zeroing new pages on every call;
    reusing one does not. Never returned to the caller: outputs are fresh arrays. In reference
    mode every call gets a fresh array."""
    xp = backend.xp_of(like)
    if _reference:
        return xp.empty(shape, like.dtype)
    size, key = math.prod(shape), (name, like.dtype.char, type(like), str(getattr(like, "device", "")))
    kept = _kept.__dict__.get(key)  # flat, so that a smaller request (a batch's last span) reuses it
    if kept is None or kept.size < size:
        kept = _kept.__dict__[key] = xp.empty(size, like.dtype)
    return kept[:size].reshape(shape)


def on_fast_path(x):
    """True where a layer runs its compiled loops and worker threads: NumPy arrays, out of
    reference mode. CuPy and reference mode run the NumPy expressions on the page."""
    return backend.xp_of(x) is np and not _reference


@contextlib.contextmanager
def reference_mode(on=True):
    """``with reference_mode():`` runs the readable definitions (also: MINIGAN_REFERENCE=1, or
    the demos' --reference)."""
    global _reference
    saved, _reference = _reference, bool(on)
    try:
        yield
    finally:
        _reference = saved


def check_positive(layer_name, **sizes):
    for name, v in sizes.items():
        if not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{layer_name}: expected {name} to be a positive int, got {v!r}")


def check_rank(layer, in_shape, ranks, what):
    if len(in_shape) not in ranks:
        raise ValueError(f"{layer}: expected input of shape {what}, got {tuple(in_shape)}")


def feature_sum(a, b=None):
    """Σ a (or Σ a·b) over every axis but the feature axis 1: shape (a.shape[1],).

    On NumPy one einsum walks the arrays once and never forms a·b; a.sum(axis=(0, 2, 3)) and
    (a * b).sum(...) ran 2-3x slower on the DCGAN's activations here, with the same rounding.
    CuPy's einsum becomes two copies and a batched matmul, so there the plain reduction is used.
    """
    xp = backend.xp_of(a)
    axes = (0,) + tuple(range(2, a.ndim))
    if xp is not np:
        return (a if b is None else a * b).sum(axis=axes)
    i = "ncdefghij"[:a.ndim]  # one letter per axis; "c" is the feature axis, the one kept
    return xp.einsum(f"{i}->c", a) if b is None else xp.einsum(f"{i},{i}->c", a, b)
