"""What every layer shares: its dicts, input checks, and moving between backends."""
import numpy as np

from .. import backend


class Layer:
    """A layer holds ``params`` and ``grads`` (dicts with the same keys) and ``buffers``
    (state that is saved but not trained, such as BatchNorm's running statistics).

    ``forward(x, training=True)`` caches what ``backward`` needs in ``self.cache``;
    ``backward(dy, param_grads=True)`` fills ``self.grads`` and returns dx. With
    ``param_grads=False`` it returns dx only and leaves ``self.grads`` as they were: for
    backpropagating through a network that is not being trained in this pass (D in the
    generator's step). Parameters are read from ``self.params`` at every call, so assigning
    a new array there takes effect.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.cache = None
        self._scratch = {}

    def output_shape(self, in_shape):
        """The output shape for an input shape; raises ValueError for an input it cannot take."""
        return tuple(in_shape)

    def check_input(self, x):
        """Validate x (type, backend, dtype, shape) before any state changes; return y's shape."""
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
        return self.output_shape(x.shape)

    def check_grad(self, dy):
        """Validate dy against the last forward's output before backward changes anything."""
        if self.cache is None:
            raise RuntimeError(f"{self}: backward called before forward")
        if tuple(dy.shape) != self.y_shape:
            raise ValueError(f"{self}: expected a gradient of shape {self.y_shape} "
                             f"(the last forward's output), got {tuple(dy.shape)}")

    def scratch(self, name, shape, like):
        """A work array kept from call to call, its contents overwritten by each call. A fresh
        array of the DCGAN's column-buffer size (tens of MB) costs the kernel zeroing new pages on
        every step; reusing one does not. Never returned to the caller: outputs are fresh arrays."""
        a = self._scratch.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != like.dtype or type(a) is not type(like):
            a = self._scratch[name] = backend.xp_of(like).empty(shape, like.dtype)
        return a

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
        self.cache, self._scratch = None, {}
        return self

    def __repr__(self):
        return f"{type(self).__name__}()"


def check_positive(layer_name, **sizes):
    for name, v in sizes.items():
        if not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{layer_name}: expected {name} to be a positive int, got {v!r}")


def check_rank(layer, in_shape, ranks, what):
    if len(in_shape) not in ranks:
        raise ValueError(f"{layer}: expected input of shape {what}, got {tuple(in_shape)}")


def feature_sum(a, b=None):
    """Σ a (or Σ a·b) over every axis but the feature axis 1: shape (a.shape[1],).

    One einsum walks the arrays once and never forms a·b; a.sum(axis=(0, 2, 3)) and
    (a * b).sum(...) ran 2-3x slower on the DCGAN's activations here, with the same rounding.
    """
    i = "ncdefghij"[:a.ndim]  # one letter per axis; "c" is the feature axis, the one kept
    if b is None:
        return backend.xp_of(a).einsum(f"{i}->c", a)
    return backend.xp_of(a).einsum(f"{i},{i}->c", a, b)
