"""See one step from the inside: each layer's output statistics on the way forward and each
gradient's norm on the way back, in the order they happen.

    with trace(G, D):                 # any Sequential models
        trainer.train_step(real, z)   # prints a line per layer call

What a reader would otherwise get from twenty breakpoints. The layers' own methods are
wrapped only inside the `with` block.
"""
import contextlib

import numpy as np

from . import backend


def _stats(a):
    a = backend.to_host(a).astype(np.float64)
    return f"mean {a.mean():+.3e} std {a.std():.3e} min {a.min():+.3e} max {a.max():+.3e}"


def _norm(a):
    return float(np.linalg.norm(backend.to_host(a).astype(np.float64)))


@contextlib.contextmanager
def trace(*models, names=None, print=print):
    names = names or [f"model{i}" for i in range(len(models))]
    wrapped = []
    for name, model in zip(names, models):
        for i, layer in enumerate(model.layers):
            label = f"{name}.{i} {type(layer).__name__}"
            wrapped.append(layer)

            def forward(x, training=True, _f=layer.forward, _label=label):
                y = _f(x, training)
                print(f"forward  {_label:26s} {str(tuple(y.shape)):18s} {_stats(y)}")
                return y

            def backward(dy, param_grads=True, _b=layer.backward, _label=label, _layer=layer):
                dx = _b(dy, param_grads)
                grads = " ".join(f"|d{k}| {_norm(g):.3e}" for k, g in _layer.grads.items())
                print(f"backward {_label:26s} {str(tuple(dx.shape)):18s} |dx| {_norm(dx):.3e} {grads}")
                return dx

            layer.forward, layer.backward = forward, backward
    try:
        yield
    finally:
        for layer in wrapped:
            del layer.forward, layer.backward  # back to the class's own methods
