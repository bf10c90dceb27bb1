"""Containers that are not a plain chain: several heads on one trunk (MAD-GAN's generators) and
an autoencoder's reconstruction error as one layer (EBGAN's energy). Both are Sequentials of
their inner layers, so parameters keep Sequential's names and every Sequential tool
(state_dict, rng_states, summary, to) works on them; forward and backward are their own, and
so is the derivative of backward (the gradient penalties differentiate it)."""
from ..backend import xp_of
from .base import check_backward, check_backward_backward, check_forward
from .sequential import Sequential


class Heads(Sequential):
    """k layers side by side: sample n of the batch goes through head n mod k.

    y[n] = head_{n mod k}(x[n]);  backward: dx[n] = head_{n mod k}.backward(dy[n]);
    backward_backward: each head's, on its rows of dy and g.
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

    def _rows(self, a, j):
        return xp_of(a).ascontiguousarray(a[j::self.k])

    def forward(self, x, training=True):
        self.check_input(x)
        y = xp_of(x).empty(self.y_shape, x.dtype)
        for j, head in enumerate(self.layers[:len(x)]):
            xj = self._rows(x, j)
            yj = head.forward(xj, training)
            check_forward(head, xj, yj)
            y[j::self.k] = yj
        return y

    def backward(self, dy, param_grads=True, create_graph=False):
        """Each head's backward on its samples' rows of dy; their dx rows interleave back (a head
        keeps nothing for a second derivative: its rows of dy are cut again from dy)."""
        self.check_grad(dy)
        xp = xp_of(dy)
        dx = xp.empty(self.x_shape, dy.dtype)
        for j, head in enumerate(self.layers):
            if j < len(dy):
                dxj = head.backward(self._rows(dy, j), param_grads)
                check_backward(head, dxj, param_grads)
                dx[j::self.k] = dxj
            elif param_grads:  # a head with no sample in this batch: its gradient is zero
                head.grads.update({k: xp.zeros_like(v) for k, v in head.params.items()})
        return dx

    _down = backward

    def backward_backward(self, dy, g, param_grads=True):
        """(g_dy, g_x): each head's backward_backward on its rows; g_x None when no head's is."""
        self.check_double(dy, g)
        xp = xp_of(dy)
        g_dy, g_x = xp.empty(self.y_shape, dy.dtype), None
        for j, head in enumerate(self.layers):
            if j >= len(dy):
                if param_grads:
                    head.grads.update({k: xp.zeros_like(v) for k, v in head.params.items()})
                continue
            a, b = head.backward_backward(self._rows(dy, j), self._rows(g, j), param_grads)
            check_backward_backward(head, a, b, param_grads)
            g_dy[j::self.k] = a
            if b is not None:
                g_x = xp.zeros(self.x_shape, dy.dtype) if g_x is None else g_x
                g_x[j::self.k] = b
        return g_dy, g_x

    def __repr__(self):
        return "Heads(\n" + "\n".join(f"  ({j}) {head!r}" for j, head in enumerate(self.layers)) + "\n)"


class Energy(Sequential):
    """The reconstruction error of an autoencoder, per sample: EBGAN's discriminator.

    r = AE(x) − x;   E_n = mean over the sample's P values of r²,   x: (N, ...) -> (N, 1).
    backward, with g_r = 2 r dy / P (dy: (N, 1), broadcast over each sample):
        dx = AE.backward(g_r) − g_r          (through the autoencoder, and through the skip from x)
    The derivative of that backward, given G = ∂P/∂dx: with (a, g_x,AE) = AE's backward_backward
    (g_r, G) and A = a − G the adjoint of g_r,
        g_dy_n = (2/P) Σ_p r_np A_np,   g_x = g_x,AE + AE.backward(a_r) − a_r,   a_r = (2/P) dy A,
    the last two because r depends on x through AE's forward and through the skip; AE's
    parameters gain the adjoints of both of its passes.
    The container holds the autoencoder as its one layer: "0.<i>.W" names its layer i's weight.
    """

    def __init__(self, autoencoder):
        if not isinstance(autoencoder, Sequential):
            raise TypeError(f"Energy: expected the autoencoder as a Sequential, got {type(autoencoder).__name__}")
        super().__init__(autoencoder)

    @property
    def ae(self):
        return self.layers[0]

    def output_shape(self, in_shape):
        out = self.ae.output_shape(in_shape)
        if tuple(out) != tuple(in_shape):
            raise ValueError(f"Energy: expected an autoencoder whose output has its input's shape "
                             f"{tuple(in_shape)}, got {tuple(out)}")
        return (in_shape[0], 1)

    def forward(self, x, training=True):
        self.check_input(x)
        r = self.ae.forward(x, training) - x
        self.cache = r
        per_sample = r.reshape(len(r), -1)
        return (per_sample * per_sample).mean(axis=1, keepdims=True)

    def _per_sample(self, a):
        r = self.cache
        return a.reshape((len(r),) + (1,) * (r.ndim - 1))

    def backward(self, dy, param_grads=True, create_graph=False):
        """dx = AE.backward(g_r) − g_r, g_r = 2 r dy / P."""
        self.check_grad(dy)
        r = self.cache
        self.g_r = g_r = r * self._per_sample(2 / r[0].size * dy)
        return self.ae.backward(g_r, param_grads, create_graph) - g_r

    def _down(self, dy, param_grads):
        return self.backward(dy, param_grads)

    def backward_backward(self, dy, g, param_grads=True):
        """(g_dy, g_x): the class docstring's equations."""
        self.check_double(dy, g)
        r, ae = self.cache, self.ae
        P = r[0].size
        a, g_x = ae.backward_backward(self.g_r, g, param_grads)
        A = a - g
        g_dy = (r * A).reshape(len(r), -1).sum(axis=1, keepdims=True) * (2 / P)
        a_r = A * self._per_sample(2 / P * dy)
        through = [(leaf, k, leaf.grads[k]) for _, leaf, k in ae.named_parameters()] if param_grads else []
        dx_r = ae._down(a_r, param_grads)
        for leaf, k, adjoint in through:
            leaf.grads[k] = leaf.grads[k] + adjoint
        g_x = dx_r - a_r if g_x is None else g_x + dx_r - a_r
        return g_dy, g_x

    def __repr__(self):
        return f"Energy({self.ae!r})"
