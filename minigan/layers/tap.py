"""Tap: a named point in a network where the trainer reads an activation and adds gradients."""
from .base import Layer


class Tap(Layer):
    """Wraps a layer without changing it: y = layer(x), and the tap keeps y as `value`;
    backward passes dy + `extra` to the layer, where `extra` is what add_grad() gathered since
    the last forward (the gradients of the terms read at this point: feature matching, MMD on
    D's features). It owns nothing: params, grads and buffers are the wrapped layer's, so
    checkpoints keep their names.

    The trainer taps D's features this way: D runs as one Sequential, one forward and one
    backward per pass, and the terms' gradients join at the tap.
    """

    def __init__(self, layer, name="features"):
        super().__init__()
        if not isinstance(layer, Layer):
            raise TypeError(f"Tap: expected a Layer to wrap, got {type(layer).__name__}")
        self.layer, self.name = layer, name
        self.value = self.extra = None
        self._share()

    def _share(self):
        self.params, self.grads, self.buffers, self.rng = (self.layer.params, self.layer.grads, self.layer.buffers,
                                                           self.layer.rng)

    def output_shape(self, in_shape):
        return self.layer.output_shape(in_shape)

    def forward(self, x, training=True):
        self.check_input(x)
        self.value, self.extra = self.layer.forward(x, training), None
        return self.value

    def add_grad(self, g):
        """Add g (the shape of `value`) to the gradient that the next backward passes through."""
        if tuple(g.shape) != self.y_shape:
            raise ValueError(f"{self}: expected a gradient of shape {self.y_shape}, got {tuple(g.shape)}")
        self.extra = g if self.extra is None else self.extra + g

    def backward(self, dy, param_grads=True):
        """dx = layer.backward(dy + extra)."""
        self.check_grad(dy)
        dx = self.layer.backward(dy if self.extra is None else dy + self.extra, param_grads)
        self.extra = None
        self._share()
        return dx

    def leaves(self):
        yield from self.layer.leaves()

    def named_parameters(self, prefix=""):
        yield from self.layer.named_parameters(prefix)

    def to(self, xp=None, dtype=None):
        self.layer.to(xp, dtype)
        self._share()
        self.value = self.extra = None
        return self

    def __repr__(self):
        return f"Tap({self.layer!r}, {self.name!r})"


def find_tap(model, name):
    """The Tap called `name` in `model` (nested Sequentials and containers searched), or None."""
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, Tap) and layer.name == name:
            return layer
        found = find_tap(layer, name)
        if found is not None:
            return found
    return None
