from .. import backend, init
from .activations import Elementwise


class Dropout(Elementwise):
    """Inverted dropout (any shape), the example of a layer that draws random numbers.

    training: keep ~ Bernoulli(1 − p) per entry, drawn by self.draw from self.rng;
              y = x · keep / (1 − p)
    eval:     y = x
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: expected 0 <= p < 1, got {p!r}")
        self.p = p
        self.rng = init.as_generator(rng)

    def forward(self, x, training=True):
        self.check_input(x)
        if not training or self.p == 0:
            self.cache = None
            return x.copy()
        keep = self.draw(lambda rng: rng.random(x.shape) >= self.p)  # on the host, from self.rng
        scale = backend.to_backend(keep, backend.xp_of(x), x.dtype)
        scale /= x.dtype.type(1 - self.p)
        self.cache = scale
        return x * scale

    def backward(self, dy, param_grads=True):
        """dx = dy · keep / (1 − p) in training (the forward's own draw);  dx = dy in eval."""
        self.check_grad(dy)
        return dy.copy() if self.cache is None else dy * self.cache

    def backward_backward(self, dy, g, param_grads=True):
        """dx is linear in dy and, with the forward's draw held, does not see x:
        g_dy = g · keep / (1 − p) (training), g (eval);  g_x = None."""
        self.check_double(dy, g)
        return self.backward(g), None

    def __repr__(self):
        return f"Dropout(p={self.p})"
