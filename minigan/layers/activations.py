from ..backend import xp_of
from .base import Layer


class LeakyReLU(Layer):
    """y = x for x > 0, negative_slope * x otherwise (any shape)."""

    def __init__(self, negative_slope=0.2):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x, training=True):
        self.y_shape = self.check_input(x)
        positive = x > 0
        self.cache = positive
        y = x * x.dtype.type(self.negative_slope)
        xp_of(x).copyto(y, x, where=positive)  # one pass, no second temporary (np.where would make one)
        return y

    def backward(self, dy):
        """dx = dy where x > 0, negative_slope * dy elsewhere."""
        self.check_grad(dy)
        dx = dy * dy.dtype.type(self.negative_slope)
        xp_of(dy).copyto(dx, dy, where=self.cache)
        return dx

    def __repr__(self):
        return f"{type(self).__name__}(negative_slope={self.negative_slope})"


class ReLU(LeakyReLU):
    """y = max(x, 0): LeakyReLU with slope 0."""

    def __init__(self):
        super().__init__(negative_slope=0.0)

    def __repr__(self):
        return "ReLU()"


class Tanh(Layer):
    """y = tanh(x)."""

    def forward(self, x, training=True):
        self.y_shape = self.check_input(x)
        y = xp_of(x).tanh(x)
        self.cache = y
        return y

    def backward(self, dy):
        """dx = dy * (1 - y²)."""
        self.check_grad(dy)
        y = self.cache
        return dy * (1 - y * y)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2, which never overflows."""

    def forward(self, x, training=True):
        self.y_shape = self.check_input(x)
        y = (1 + xp_of(x).tanh(x / 2)) / 2
        self.cache = y
        return y

    def backward(self, dy):
        """dx = dy * y * (1 - y)."""
        self.check_grad(dy)
        y = self.cache
        return dy * y * (1 - y)
