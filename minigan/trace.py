"""See one step from the inside: each layer's output statistics on the way forward and each
gradient's norm on the way back, in the order they happen, one labelled block per pass.

    with trace(G, D, names=["G", "D"], passes={"D": ["D on real", "D on fake", "D in G's step"]}):
        trainer.train_step(real, z)   # prints a line per layer call

What a reader would otherwise get from twenty breakpoints. The layers' own methods
are wrapped only inside the `with` block. A backward with param_grads=False computes
no parameter gradients, and the trace prints none for it (the layer's grads are still the
previous pass's).
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
def trace(*models, names=None, passes=None, print=print):
    """names: one per model (default model0, model1, ...); passes: {name: [label of its 1st
    forward pass, 2nd, ...]} (default "pass 1", "pass 2", ...)."""
    names = names or [f"model{i}" for i in range(len(models))]
    passes = passes or {}
    wrapped = []
    for name, model in zip(names, models):
        count, labels, last = [0], list(passes.get(name, [])), len(model.layers) - 1

        def header(training, _name=name, _count=count, _labels=labels):
            # A pass starts at the model's first layer, whichever Sequential calls it (the
            # step reads D's features at a Tap wrapped around one of D's layers).
            _count[0] += 1
            n = _count[0]
            label = _labels[n - 1] if n <= len(_labels) else f"{_name} pass {n}"
            print(f"--- {label}: {_name}.forward ({'training' if training else 'eval'} mode)")

        for i, layer in enumerate(model.layers):
            label = f"{name}.{i} {type(layer).__name__}"

            def forward(x, training=True, _f=layer.forward, _label=label, _first=i == 0, _header=header):
                if _first:
                    _header(training)
                y = _f(x, training)
                print(f"forward  {_label:26s} {str(tuple(y.shape)):18s} {_stats(y)}")
                return y

            def backward(dy, param_grads=True, _b=layer.backward, _label=label, _layer=layer, _name=name,
                         _last=i == last):
                if _last:
                    print(f"--- {_name}.backward" + ("" if param_grads else " with param_grads=False: dx only, "
                                                    "no parameter gradients"))
                dx = _b(dy, param_grads)
                grads = " ".join(f"|d{k}| {_norm(g):.3e}" for k, g in _layer.grads.items()) if param_grads else ""
                print(f"backward {_label:26s} {str(tuple(dx.shape)):18s} |dx| {_norm(dx):.3e} {grads}".rstrip())
                return dx

            layer.forward, layer.backward = forward, backward
            wrapped.append(layer)
    try:
        yield
    finally:
        for obj in wrapped:
            del obj.forward, obj.backward  # back to the class's own methods
