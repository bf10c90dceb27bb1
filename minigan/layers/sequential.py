import numpy as np

from .. import backend
from .base import Layer, check_backward, check_backward_backward, check_forward


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
        self.kept_dys = None  # each layer's incoming dy, from backward(dy, create_graph=True)

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

    def backward(self, dy, param_grads=True, create_graph=False):
        """dx of the whole chain: each layer's backward in reverse order. With create_graph=True
        each layer's incoming dy is kept (a reference, in ``kept_dys``) for a backward_backward;
        otherwise nothing is kept, and what an earlier call kept is let go."""
        self.check_grad(dy)
        self.kept_dys = [] if create_graph else None
        for layer in reversed(self.layers):
            if create_graph:
                self.kept_dys.append(dy)
                dx = layer.backward(dy, param_grads, True) if isinstance(layer, Sequential) else \
                    layer.backward(dy, param_grads)
            else:
                dx = layer.backward(dy, param_grads)
            check_backward(layer, dx, param_grads)
            dy = dx
        if create_graph:
            self.kept_dys.reverse()  # kept_dys[i]: the dy layer i received
        return dy

    def backward_backward(self, dy, g, param_grads=True):
        """(g_dy, g_x) of the chain, after backward(dy, create_graph=True): g = ∂P/∂dx of the
        chain's dx, g_dy = ∂P/∂dy, g_x = the total ∂P/∂x of the chain's input (None where no layer's
        backward depends on its input).

        Up: layer i's backward_backward(dy_i, g_i) gives g_{i+1} (its g_dy, the next layer's g),
            its θ adjoint and its own g_x,i, the adjoint of its input x_i through its backward.
        Down: x_i is the output of layers 0..i−1, so one ordinary backward runs through the forward
            chain, from the highest layer with a g_x, with each g_x,i added at layer i's input:
            δ_i = backward_i(δ_{i+1}) + g_x,i.  With param_grads each layer's grads are that
            backward's plus its θ adjoint from the way up."""
        self.check_double(dy, g)
        if self.kept_dys is None or self.kept_dys[-1] is not dy:
            raise RuntimeError("Sequential.backward_backward(dy, g): expected the dy of the last "
                               "backward(dy, create_graph=True), which keeps each layer's dy; "
                               + ("none was kept" if self.kept_dys is None else "got another array"))
        for leaf in self.leaves():  # a layer that cannot is named before any layer's grads change
            if type(leaf).backward_backward is Layer.backward_backward:
                leaf.backward_backward(None, None)
        adjoints, g_xs = [], []
        for layer, dy_i in zip(self.layers, self.kept_dys):
            g_dy, g_x = layer.backward_backward(dy_i, g, param_grads)
            check_backward_backward(layer, g_dy, g_x, param_grads)
            adjoints.append([(leaf, k, leaf.grads[k]) for _, leaf, k in layer.named_parameters()]
                            if param_grads else [])
            g_xs.append(g_x)
            g = g_dy
        delta = None
        for layer, adjoint, g_x in zip(reversed(self.layers), reversed(adjoints), reversed(g_xs)):
            ran = delta is not None
            if ran:
                delta = layer._down(delta, param_grads) if isinstance(layer, Sequential) else \
                    layer.backward(delta, param_grads)
                check_backward(layer, delta, param_grads)
            for leaf, k, a in adjoint:
                leaf.grads[k] = leaf.grads[k] + a if ran else a
            if g_x is not None:
                delta = g_x if delta is None else delta + g_x
        return g, delta

    def _down(self, dy, param_grads):
        """backward without touching kept_dys: backward_backward's way down through a nested Sequential."""
        for layer in reversed(self.layers):
            dx = layer._down(dy, param_grads) if isinstance(layer, Sequential) else layer.backward(dy, param_grads)
            check_backward(layer, dx, param_grads)
            dy = dx
        return dy

    def release_graph(self):
        """Let go of the dys kept by backward(dy, create_graph=True) (nested Sequentials' too)."""
        self.kept_dys = None
        for layer in self.layers:
            if isinstance(layer, Sequential):
                layer.release_graph()

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
