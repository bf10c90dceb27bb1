import numpy as np

from .base import Layer


class Reshape(Layer):
    """(N, ...) -> (N, *shape); backward reshapes the gradient back."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        if any(s <= 0 for s in self.shape):
            raise ValueError(f"Reshape: expected positive sizes, got {shape!r}")

    def output_shape(self, in_shape):
        if len(in_shape) < 1 or int(np.prod(in_shape[1:])) != int(np.prod(self.shape)):
            raise ValueError(f"{self}: expected (N, ...) with {int(np.prod(self.shape))} values per "
                             f"sample, got shape {tuple(in_shape)}")
        return (in_shape[0],) + self.shape

    def forward(self, x, training=True):
        self.check_input(x)
        self.cache = x.shape
        return x.reshape(self.y_shape)

    def backward(self, dy, param_grads=True):
        """dx = dy reshaped to x's shape."""
        self.check_grad(dy)
        return dy.reshape(self.cache)

    def backward_backward(self, dy, g, param_grads=True):
        """g_dy = g reshaped to y's shape (the forward applied to g);  g_x = None."""
        self.check_double(dy, g)
        return g.reshape(self.y_shape), None

    def __repr__(self):
        return f"Reshape({self.shape})"


class Flatten(Reshape):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""

    def __init__(self):
        Layer.__init__(self)
        self.shape = None

    def output_shape(self, in_shape):
        if len(in_shape) < 1:
            raise ValueError(f"{self}: expected (N, ...), got shape {tuple(in_shape)}")
        return (in_shape[0], int(np.prod(in_shape[1:])))

    def __repr__(self):
        return "Flatten()"
