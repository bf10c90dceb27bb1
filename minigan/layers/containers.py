"""Containers that are not a plain chain: several heads on one trunk (MAD-GAN's generators) and
an autoencoder's reconstruction error as one layer (EBGAN's energy). Both are Sequentials of
their inner layers, so parameters keep Sequential's names ("<i>.<j>.W") and every Sequential
tool (state_dict, rng_states, summary, to) works on them; only forward and backward differ."""
from ..backend import xp_of
from .base import check_backward, check_forward
from .sequential import Sequential


class Heads(Sequential):
    """k layers side by side: sample n of the batch goes through head n mod k.

    y[n] = head_{n mod k}(x[n]);  backward: dx[n] = head_{n mod k}.backward(dy[n]).
    x: (N, ...) -> y: (N, ...) with each head's output shape per sample (all heads alike).
    """

    def __init__(self, *heads):
        super().__init__(*heads)
        if not heads:
            raise ValueError("Heads: expected one or more layers")

    @property
    def k(self):
        return len(self.layers)

    def output_shape(self, in_shape):
        shapes = {tuple(head.output_shape((1, *in_shape[1:]))[1:]) for head in self.layers}
        if len(shapes) != 1:
            raise ValueError(f"{self}: expected heads with one output shape per sample, got {sorted(shapes)}")
        return (in_shape[0], *shapes.pop())

    def forward(self, x, training=True):
        self.check_input(x)
        xp = xp_of(x)
        y = xp.empty(self.y_shape, x.dtype)
        for j, head in enumerate(self.layers[:len(x)]):
            xj = xp.ascontiguousarray(x[j::self.k])
            yj = head.forward(xj, training)
            check_forward(head, xj, yj)
            y[j::self.k] = yj
        return y

    def backward(self, dy, param_grads=True):
        """Each head's backward on its samples' rows of dy; their dx rows interleave back."""
        self.check_grad(dy)
        xp = xp_of(dy)
        dx = xp.empty(self.x_shape, dy.dtype)
        for j, head in enumerate(self.layers):
            if j < len(dy):
                dxj = head.backward(xp.ascontiguousarray(dy[j::self.k]), param_grads)
                check_backward(head, dxj, param_grads)
                dx[j::self.k] = dxj
            elif param_grads:  # a head with no sample in this batch: its gradient is zero
                head.grads.update({k: xp.zeros_like(v) for k, v in head.params.items()})
        return dx

    def __repr__(self):
        return "Heads(\n" + "\n".join(f"  ({j}) {head!r}" for j, head in enumerate(self.layers)) + "\n)"


class Energy(Sequential):
    """The reconstruction error of an autoencoder, per sample: EBGAN's discriminator.

    r = AE(x) − x;   E(x)_n = mean over the sample's P values of r²,   x: (N, ...) -> (N, 1).
    backward, with g = 2 r dy / P (dy: (N, 1), broadcast over the sample):
        dx = AE.backward(g) − g          (through the autoencoder, and through the skip from x)
    The autoencoder's layers are this container's layers: "0.W" is its first layer's weight.
    """

    def output_shape(self, in_shape):
        out = super().output_shape(in_shape)
        if tuple(out) != tuple(in_shape):
            raise ValueError(f"Energy: expected an autoencoder whose output has its input's shape "
                             f"{tuple(in_shape)}, got {tuple(out)}")
        return (in_shape[0], 1)

    def forward(self, x, training=True):
        self.check_input(x)
        a = x
        for layer in self.layers:
            y = layer.forward(a, training)
            check_forward(layer, a, y)
            a = y
        r = a - x
        self.cache = r
        per_sample = r.reshape(len(r), -1)
        return (per_sample * per_sample).mean(axis=1, keepdims=True)

    def backward(self, dy, param_grads=True):
        """dx = AE.backward(g) − g, g = 2 r dy / P."""
        self.check_grad(dy)
        r = self.cache
        g = r * (2 / r[0].size * dy).reshape((len(r),) + (1,) * (r.ndim - 1))
        d = g
        for layer in reversed(self.layers):
            dx = layer.backward(d, param_grads)
            check_backward(layer, dx, param_grads)
            d = dx
        return d - g

    def __repr__(self):
        return "Energy(" + super().__repr__() + ")"
