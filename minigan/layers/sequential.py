import numpy as np

from .. import backend
from .base import Layer


class Sequential(Layer):
    """Layers applied in order; backward walks them in reverse.

    Parameters are named "<layer index>.<key>" (e.g. "3.W", "1.running_mean") in
    ``named_parameters`` and ``state_dict``.
    """

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: expected Layer instances, got {type(layer).__name__} "
                                f"at position {i}")
        self.layers = list(layers)
        self.buffers = {}
        self.cache = None

    @property
    def params(self):
        """Each layer's params dict, by layer index."""
        return [layer.params for layer in self.layers]

    @property
    def grads(self):
        """Each layer's grads dict, by layer index."""
        return [layer.grads for layer in self.layers]

    def output_shape(self, in_shape):
        for layer in self.layers:
            in_shape = layer.output_shape(in_shape)
        return tuple(in_shape)

    def forward(self, x, training=True):
        # Check every layer's shape first, so that a bad input changes no state
        # (no cache, no BatchNorm running statistics) in the layers before the one that rejects it.
        self.output_shape(x.shape)
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dy, param_grads=True):
        """dx of the whole chain: each layer's backward in reverse order."""
        for layer in reversed(self.layers):
            dy = layer.backward(dy, param_grads)
        return dy

    def named_parameters(self, prefix=""):
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def _slots(self):
        """(name, dict, key) for every parameter and buffer, nested Sequentials included."""
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Sequential):
                for name, d, k in layer._slots():
                    yield f"{i}.{name}", d, k
            else:
                for d in (layer.params, layer.buffers):
                    for k in d:
                        yield f"{i}.{k}", d, k

    def state_dict(self):
        """{"<i>.<key>": array} for every parameter and buffer (the arrays themselves, not copies)."""
        return {name: d[k] for name, d, k in self._slots()}

    def load_state_dict(self, state):
        """Load arrays by name, onto this model's backend and dtype. Every key and shape is
        checked before anything is assigned."""
        slots = {name: (d, k) for name, d, k in self._slots()}
        missing, unexpected = sorted(set(slots) - set(state)), sorted(set(state) - set(slots))
        if missing or unexpected:
            raise ValueError(f"Sequential.load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        for name, (d, k) in slots.items():
            if tuple(state[name].shape) != tuple(d[k].shape):
                raise ValueError(f"Sequential.load_state_dict: {name} expected shape "
                                 f"{tuple(d[k].shape)}, got {tuple(state[name].shape)}")
        for name, (d, k) in slots.items():
            d[k] = backend.to_backend(state[name], backend.xp_of(d[k]), d[k].dtype)

    def to(self, xp=None, dtype=None):
        for layer in self.layers:
            layer.to(xp, dtype)
        return self

    def num_params(self):
        return int(sum(np.prod(layer.params[k].shape) for _, layer, k in self.named_parameters()))

    def summary(self, input_shape):
        """A table of layers, output shapes and parameter counts for `input_shape` (like Keras')."""
        lines = [f"{'#':>3s}  {'layer':58s} {'output shape':>20s} {'params':>10s}"]
        shape = tuple(input_shape)
        lines.append(f"{'':>3s}  {'input':58s} {str(shape):>20s} {'':>10s}")
        for i, layer in enumerate(self.layers):
            shape = layer.output_shape(shape)
            count = sum(int(np.prod(v.shape)) for v in layer.params.values()) if not isinstance(layer, Sequential) \
                else layer.num_params()
            lines.append(f"{i:3d}  {repr(layer)[:58]:58s} {str(shape):>20s} {count:10,d}")
        lines.append(f"{'':>3s}  {'total':58s} {'':>20s} {self.num_params():10,d}")
        return "\n".join(lines)

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"
