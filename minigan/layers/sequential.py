import numpy as np

from .. import backend
from .base import Layer, check_backward, check_forward


class Sequential(Layer):
    """Layers applied in order; backward walks them in reverse. After each layer's call the
    layer contract (base.Layer) is checked, so a broken layer is named at its first call.

    Parameters are named "<layer index>.<key>" (e.g. "3.W", "1.running_mean"; "2.0.W" inside
    a nested Sequential) in ``named_parameters``, ``params``, ``grads`` and ``state_dict``.
    """

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: expected Layer instances, got {type(layer).__name__} "
                                f"at position {i}")
        self.layers = list(layers)
        self.buffers, self.cache, self.rng = {}, None, None  # its layers hold the rest
        self.x_shape = self.y_shape = None

    @property
    def params(self):
        """{"<i>.<key>": array} of every layer's parameters (a new dict of the layers' arrays:
        to replace a parameter, assign into the layer's own ``params``)."""
        return {name: layer.params[k] for name, layer, k in self.named_parameters()}

    @property
    def grads(self):
        """{"<i>.<key>": array} of every layer's gradients, the same keys as ``params``."""
        return {name: layer.grads.get(k) for name, layer, k in self.named_parameters()}

    def output_shape(self, in_shape):
        for layer in self.layers:
            in_shape = layer.output_shape(in_shape)
        return tuple(in_shape)

    def forward(self, x, training=True):
        # Check every layer's shape first, so that a bad input changes no state
        # (no cache, no BatchNorm running statistics) in the layers before the one that rejects it.
        self.y_shape = self.output_shape(x.shape)
        self.x_shape = tuple(x.shape)
        for layer in self.layers:
            y = layer.forward(x, training)
            check_forward(layer, x, y)
            x = y
        return x

    def backward(self, dy, param_grads=True):
        """dx of the whole chain: each layer's backward in reverse order."""
        self.check_grad(dy)
        for layer in reversed(self.layers):
            dx = layer.backward(dy, param_grads)
            check_backward(layer, dx, param_grads)
            dy = dx
        return dy

    def leaves(self):
        for layer in self.layers:
            yield from layer.leaves()

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

    def rng_states(self):
        """{"<i>": generator state} of every layer that draws random numbers (plain JSON-able
        dicts), for saving a run so that a resume draws the same numbers."""
        return {key: layer.rng.bit_generator.state for key, layer in self._random_layers()}

    def load_rng_states(self, states):
        """Set the generators saved by rng_states(); the keys must match this model's."""
        layers = dict(self._random_layers())
        if set(states) != set(layers):
            raise ValueError(f"Sequential.load_rng_states: expected generator states for layers "
                             f"{sorted(layers)}, got {sorted(states)}")
        for key, state in states.items():
            layers[key].rng.bit_generator.state = state

    def _random_layers(self):
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Sequential):
                yield from ((f"{i}.{k}", v) for k, v in layer._random_layers())
            elif layer.rng is not None:
                yield str(i), layer

    def to(self, xp=None, dtype=None):
        for layer in self.layers:
            layer.to(xp, dtype)
        return self

    def num_params(self):
        return int(sum(np.prod(layer.params[k].shape) for _, layer, k in self.named_parameters()))

    def summary(self, input_shape):
        """A table of layers, output shapes and parameter counts for `input_shape` (like Keras');
        a nested Sequential's layers are listed under its index ("2.0", "2.1", ...)."""
        rows = [("", "input", str(tuple(input_shape)), "")]
        self._summary_rows(tuple(input_shape), "", rows)
        rows.append(("", "total", "", f"{self.num_params():,d}"))
        w = [max(len(r[c]) for r in rows + [("#", "layer", "output shape", "params")]) for c in range(4)]
        head = f"{'#':>{w[0]}s}  {'layer':{w[1]}s}  {'output shape':>{w[2]}s}  {'params':>{w[3]}s}"
        return "\n".join([head] + [f"{a:>{w[0]}s}  {b:{w[1]}s}  {c:>{w[2]}s}  {d:>{w[3]}s}" for a, b, c, d in rows])

    def _summary_rows(self, shape, prefix, rows):
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Sequential):
                shape = layer._summary_rows(shape, f"{prefix}{i}.", rows)
                continue
            shape = tuple(layer.output_shape(shape))
            count = sum(int(np.prod(v.shape)) for v in layer.params.values())
            rows.append((f"{prefix}{i}", repr(layer), str(shape), f"{count:,d}"))
        return shape

    def __repr__(self):
        inner = "\n".join(f"  ({i}) " + repr(layer).replace("\n", "\n  ") for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"
