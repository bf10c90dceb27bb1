from ..backend import xp_of
from ..kernels import elementwise_numba
from .base import Layer, on_fast_path


def sigmoid(x):
    """1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2, which never overflows."""
    return (1 + xp_of(x).tanh(x / 2)) / 2


class Elementwise(Layer):
    """A layer that maps each entry on its own: the output has the input's shape."""

    def output_shape(self, in_shape):
        return tuple(in_shape)


class LeakyReLU(Elementwise):
    """y = x for x > 0, a·x otherwise, with a = negative_slope in [0, 1] (any shape).

    Computed as max(x, a·x) (true for 0 <= a <= 1): np.maximum is SIMD, while np.where and
    masked copies ran 10x slower on a DCGAN-sized array here.
    """

    def __init__(self, negative_slope=0.2):
        super().__init__()
        if not 0 <= negative_slope <= 1:
            raise ValueError(f"LeakyReLU: expected 0 <= negative_slope <= 1, got {negative_slope!r}")
        self.negative_slope = negative_slope

    def forward(self, x, training=True):
        self.check_input(x)
        if on_fast_path(x):  # the same, in one compiled pass (kernels/elementwise_numba.py)
            y, self.cache = elementwise_numba.leaky_relu(x, self.negative_slope)
            return y
        self.cache = x > 0
        y = x * x.dtype.type(self.negative_slope)
        return xp_of(x).maximum(x, y, out=y)

    def backward(self, dy, param_grads=True):
        """dx = dy · (a + (1 − a)·[x > 0]):  dy where x > 0, a·dy elsewhere."""
        self.check_grad(dy)
        if on_fast_path(dy):
            return elementwise_numba.leaky_relu_grad(dy, self.cache, self.negative_slope)
        a = dy.dtype.type(self.negative_slope)
        slope = self.cache.astype(dy.dtype)
        slope *= 1 - a
        slope += a
        return dy * slope

    def backward_backward(self, dy, g, param_grads=True):
        """dx = dy · slope(x) is linear in dy, and slope is constant off the kink:
        g_dy = g · slope(x) (the forward's linearisation);  g_x = None."""
        self.check_double(dy, g)
        return self.backward(g), None

    def __repr__(self):
        return f"{type(self).__name__}(negative_slope={self.negative_slope})"


class ReLU(LeakyReLU):
    """y = max(x, 0): LeakyReLU with slope 0."""

    def __init__(self):
        super().__init__(negative_slope=0.0)

    def __repr__(self):
        return "ReLU()"


class Tanh(Elementwise):
    """y = tanh(x)."""

    def forward(self, x, training=True):
        self.check_input(x)
        y = xp_of(x).tanh(x)
        self.cache = y
        return y

    def backward(self, dy, param_grads=True):
        """dx = dy * (1 - y²)."""
        self.check_grad(dy)
        y = self.cache
        return dy * (1 - y * y)

    def backward_backward(self, dy, g, param_grads=True):
        """dx = dy (1 − y²), with dy/dx = 1 − y²:
        g_dy = g (1 − y²);  g_x = g · dy · d(1 − y²)/dx = −2 y (1 − y²) g dy."""
        self.check_double(dy, g)
        y = self.cache
        slope = 1 - y * y
        return g * slope, (-2 * y * slope) * (g * dy)


class Sigmoid(Elementwise):
    """y = sigmoid(x) = 1 / (1 + exp(-x))."""

    def forward(self, x, training=True):
        self.check_input(x)
        y = sigmoid(x)
        self.cache = y
        return y

    def backward(self, dy, param_grads=True):
        """dx = dy * y * (1 - y)."""
        self.check_grad(dy)
        y = self.cache
        return dy * y * (1 - y)

    def backward_backward(self, dy, g, param_grads=True):
        """dx = dy y (1 − y), with dy/dx = y (1 − y):
        g_dy = g y (1 − y);  g_x = g · dy · y (1 − y)(1 − 2y)."""
        self.check_double(dy, g)
        y = self.cache
        slope = y * (1 - y)
        return g * slope, (slope * (1 - 2 * y)) * (g * dy)
