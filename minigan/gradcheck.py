"""Numerical gradients by central differences in float64, to check any layer's backward.

    from minigan.gradcheck import check_layer
    errors = check_layer(Conv2D(3, 4, 3, stride=2), x)   # {'x': 3e-11, 'W': 2e-11, 'b': 1e-11}

The scalar checked is L = <forward(x), R> for a fixed random R, so backward(R) gives
dL/dx and dL/dparams; each is compared with (L(θ + eps·e) − L(θ − eps·e)) / (2·eps),
either for every entry e (full) or along a few random unit directions e (for arrays
too large to probe entry by entry, as chainer's check_backward does).
"""
import copy

import numpy as np

from . import backend


def rel_error(analytic, numeric):
    """‖a − n‖ / max(‖a‖, ‖n‖): 0 when both are zero."""
    a, n = np.ravel(analytic).astype(np.float64), np.ravel(numeric).astype(np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(n))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - n) / scale)


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of the scalar function f() w.r.t. every entry of the float64
    array x, which f reads; x is changed in place while probing and restored exactly."""
    if x.dtype != np.float64 or not x.flags.c_contiguous:
        raise TypeError(f"numerical_gradient: expected a C-contiguous float64 array, "
                        f"got {x.dtype} (contiguous: {x.flags.c_contiguous})")
    grad = np.zeros(x.shape)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: x must be contiguous
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = float(f())
        flat[i] = old - eps
        down = float(f())
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def directional_derivatives(f, x, directions, eps=1e-6):
    """(f(x + eps·d) − f(x − eps·d)) / (2·eps) for each direction d (arrays of x's shape)."""
    out = []
    for d in directions:
        old = x.copy()
        x += eps * d
        up = float(f())
        x[...] = old - eps * d
        down = float(f())
        x[...] = old
        out.append((up - down) / (2 * eps))
    return np.array(out)


def check_layer(layer, x, *, training=True, full=None, n_directions=6, seed=0, eps=1e-6,
                max_full_size=256):
    """Compare `layer`'s backward with numerical gradients; return {name: relative error}.

    Works on a float64 host copy of the layer (the caller's layer is left as it was); x is
    copied to float64. Names: "x" for the input gradient, then each parameter ("W",
    "3.gamma", …). full=True probes every entry, full=False `n_directions` random unit
    directions per array; full=None (default) probes every entry of arrays up to
    `max_full_size` entries. A layer that draws random numbers has its first draw held for
    every probe (Layer.hold_draw). A BatchNorm in training mode updates its running
    statistics at every probe; they do not enter a training-mode output.
    """
    report = gradient_report(layer, x, training=training, full=full, n_directions=n_directions,
                             seed=seed, eps=eps, max_full_size=max_full_size)
    return {name: error for name, (error, _) in report.items()}


def gradient_report(layer, x, *, training=True, full=None, n_directions=6, seed=0, eps=1e-6,
                    max_full_size=256):
    """check_layer's work: {name: (relative error, how it was probed)}, how being
    "full, N entries" or "K random directions, N entries"."""
    from .layers.base import check_backward, check_forward

    rng = np.random.default_rng(seed)
    layer = copy.deepcopy(layer).to(np, np.float64)
    for leaf in layer.leaves():
        leaf.hold_draw = True
    x = np.array(backend.to_host(x), dtype=np.float64)
    R = rng.standard_normal(layer.output_shape(x.shape))

    def loss():
        return np.sum(layer.forward(x, training) * R)

    check_forward(layer, x, layer.forward(x, training))
    analytic = {"x": layer.backward(R)}
    check_backward(layer, analytic["x"], True)
    slots = list(layer.named_parameters())
    analytic.update({name: l.grads[k].copy() for name, l, k in slots})
    probes = [("x", x)] + [(name, l.params[k]) for name, l, k in slots]

    report = {}
    for name, arr in probes:
        if full or (full is None and arr.size <= max_full_size):
            error = rel_error(analytic[name], numerical_gradient(loss, arr, eps))
            report[name] = (error, f"full, {arr.size:,} entries")
        else:
            dirs = [d / np.linalg.norm(d) for d in rng.standard_normal((n_directions,) + arr.shape)]
            num = directional_derivatives(loss, arr, dirs, eps)
            ana = np.array([np.sum(analytic[name] * d) for d in dirs])
            report[name] = (rel_error(ana, num), f"{n_directions} random directions, {arr.size:,} entries")
    return report


# ---- the command line ---------------------------------------------------------------------
EXAMPLES = {  # a bare layer name -> a small configuration and an input shape for it
    "Dense": ("Dense(4, 3)", (2, 4)),
    "Conv2D": ("Conv2D(2, 3, 3, stride=2, padding=1)", (2, 2, 5, 5)),
    "ConvTranspose2D": ("ConvTranspose2D(2, 3, 3, stride=2, padding=1, output_padding=1)", (2, 2, 3, 3)),
    "BatchNorm": ("BatchNorm(3)", (4, 3, 2, 2)),
    "LeakyReLU": ("LeakyReLU(0.2)", (2, 3, 4, 4)),
    "ReLU": ("ReLU()", (2, 3, 4, 4)),
    "Tanh": ("Tanh()", (2, 3, 4, 4)),
    "Sigmoid": ("Sigmoid()", (2, 3, 4, 4)),
    "Dropout": ("Dropout(0.5, rng=0)", (4, 6)),
    "Reshape": ("Reshape((2, 6))", (2, 12)),
    "Flatten": ("Flatten()", (2, 3, 2, 2)),
}


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


def parse_layer(spec):
    """'Conv2D(3, 4, 3, stride=2)', a bare 'Conv2D', 'package.module:MyLayer(8)' or
    'path/to/file.py:MyLayer(8)' -> (layer, default input shape or None). Arguments must be
    literals (nothing in them is evaluated); a module or file named is imported, as Python
    would import it."""
    import ast

    from . import layers

    head = spec.split("(", 1)[0]
    where, _, name = head.rpartition(":")
    call_text = spec[len(where) + 1:] if where else spec
    try:
        call = ast.parse(call_text.strip(), mode="eval").body
    except SyntaxError as e:
        raise UsageError(f"expected a layer such as 'Conv2D', 'Conv2D(3, 4, 3, stride=2)' or "
                         f"'my_layers.py:MyLayer(8)', got {spec!r} ({e.msg})")
    if isinstance(call, ast.Name):
        call = ast.Call(func=call, args=[], keywords=[])
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        raise UsageError(f"expected a layer call such as 'Conv2D(3, 4, 3, stride=2)', got {spec!r}")
    module = _load_module(where) if where else layers
    cls = getattr(module, call.func.id, None)
    if not (isinstance(cls, type) and issubclass(cls, layers.Layer)) or cls is layers.Layer:
        raise UsageError(f"{call.func.id} is not a minigan layer in {where or 'minigan.layers'}")
    example_shape = None
    if not where and call_text.strip() == call.func.id and call.func.id in EXAMPLES:
        text, example_shape = EXAMPLES[call.func.id]
        call = ast.parse(text, mode="eval").body
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except ValueError:
        raise UsageError(f"expected literal arguments (numbers, strings, tuples) in {spec!r}")
    try:
        return cls(*args, **kwargs), example_shape
    except (TypeError, ValueError) as e:
        hint = " (hyperparameters after the sizes are keyword-only: eps=..., stride=...)" \
            if "positional argument" in str(e) else ""
        raise UsageError(f"{spec}: {e}{hint}")


def _load_module(where):
    import importlib
    import importlib.util
    from pathlib import Path

    if where.endswith(".py") or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"no such file: {where}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ImportError as e:
        raise UsageError(f"cannot import {where}: {e}")


def main(argv=None):
    """python -m minigan.gradcheck LAYER [--input N C H W] [--eval] [--seed S] [--tol T]"""
    import argparse
    import sys

    from .layers import reference_mode

    p = argparse.ArgumentParser(
        prog="python -m minigan.gradcheck",
        description="Check a layer's backward against float64 central differences, in reference mode "
                    "(the readable im2col/col2im, no kept buffers).",
        epilog="examples: python -m minigan.gradcheck Conv2D;  python -m minigan.gradcheck "
               "'ConvTranspose2D(4, 2, 5, stride=2, padding=2, output_padding=1)' --input 2 4 7 7;  "
               "python -m minigan.gradcheck my_layers.py:AvgPool2D --input 2 3 8 8")
    p.add_argument("layer", help="a built-in layer's name (a small default configuration), a call with "
                                 "literal arguments such as 'BatchNorm(8)', or your own layer as "
                                 "'module:Class(...)' or 'path/to/file.py:Class(...)'")
    p.add_argument("--input", type=int, nargs="+", help="input shape, e.g. 2 3 8 8 (a bare built-in name "
                                                        "has a default)")
    p.add_argument("--eval", action="store_true", help="check eval mode (training=False)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-6, help="largest relative error that passes (default 1e-6)")
    args = p.parse_args(argv)
    try:
        layer, shape = parse_layer(args.layer)
        shape = tuple(args.input) if args.input else shape
        if shape is None:
            raise UsageError(f"--input is needed for {args.layer} (the input shape, e.g. --input 2 3 8 8)")
        if any(d < 1 for d in shape):
            raise UsageError(f"--input: expected positive sizes, got {' '.join(map(str, shape))}")
    except UsageError as e:
        print(f"gradcheck: {e}", file=sys.stderr)
        return 2
    x = np.random.default_rng(args.seed).standard_normal(shape)
    x = np.where(x >= 0, x + 0.05, x - 0.05)  # away from kinks (LeakyReLU at 0)
    try:
        with reference_mode():
            report = gradient_report(layer, x, training=not args.eval, seed=args.seed)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
        print(f"gradcheck: {e}", file=sys.stderr)
        return 1
    print(f"{layer!r} on input {shape} ({'eval' if args.eval else 'training'} mode), float64, reference mode:")
    for name, (err, how) in report.items():
        print(f"  d{name:10s} relative error {err:.2e}  {'ok  ' if err <= args.tol else 'FAIL'}  ({how})")
    bad = [k for k, (v, _) in report.items() if not v <= args.tol]
    print("FAIL: " + ", ".join(bad) if bad else f"all gradients within {args.tol:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
