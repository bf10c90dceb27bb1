import numpy as np

from .. import backend, init
from .base import Layer, check_positive


class Dense(Layer):
    """y = x @ W + b.   x: (N, in_features), W: (in_features, out_features), b: (out_features,)."""

    def __init__(self, in_features, out_features, *, bias=True, rng=None):
        super().__init__()
        check_positive("Dense", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        rng = init.as_generator(rng)
        self.params["W"] = init.uniform_fan_in((in_features, out_features), in_features, rng)
        if bias:
            self.params["b"] = init.uniform_fan_in((out_features,), in_features, rng)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def output_shape(self, in_shape):
        if len(in_shape) != 2 or in_shape[1] != self.in_features:
            raise ValueError(f"{self}: expected input of shape (N, {self.in_features}), "
                             f"got {tuple(in_shape)}")
        return (in_shape[0], self.out_features)

    def forward(self, x, training=True):
        self.check_input(x)
        self.cache = x
        y = x @ self.params["W"]
        if "b" in self.params:
            y += self.params["b"]
        return y

    def backward(self, dy, param_grads=True):
        """dW = xᵀ dy (in, out);  db = Σ_n dy (out,);  dx = dy Wᵀ (N, in)."""
        self.check_grad(dy)
        x = self.cache
        if param_grads:
            self.grads["W"] = x.T @ dy
            if "b" in self.params:
                self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T

    def backward_backward(self, dy, g, param_grads=True):
        """The derivative of backward's dx = dy Wᵀ, given g = ∂P/∂dx (N, in):
        g_dy = g W (N, out);  ∂P/∂W = gᵀ dy (in, out);  ∂P/∂b = 0;  g_x = None (dx does not see x).

        The symmetry of every layer linear in x: ∂P/∂dy is the forward without its bias applied
        to g, and ∂P/∂W is the weight-gradient formula (dW = xᵀ dy) with g in x's place."""
        self.check_double(dy, g)
        if param_grads:
            self.grads["W"] = g.T @ dy
            if "b" in self.params:
                self.grads["b"] = backend.xp_of(dy).zeros_like(self.params["b"])
        return g @ self.params["W"], None

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features}, bias={'b' in self.params})"
