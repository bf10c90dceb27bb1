"""Numerical gradients by central differences in float64, to check any layer's backward.

    from minigan.gradcheck import check_layer
    errors = check_layer(Conv2D(3, 4, 3, stride=2), x)   # {'x': 3e-11, 'W': 2e-11, 'b': 1e-11}

The scalar checked is L = <forward(x), R> for a fixed random R, so backward(R) gives
dL/dx and dL/dparams; each is compared with (L(θ + eps·e) − L(θ − eps·e)) / (2·eps),
either for every entry e (full) or along a few random unit directions e (for arrays
too large to probe entry by entry, as chainer's check_backward does).
"""
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

    The layer (a Layer or Sequential) is cast to float64 on the host, in place; x is copied
    to float64. Names: "x" for the input gradient, then each parameter ("W", "3.gamma", …).
    full=True probes every entry, full=False `n_directions` random directions per array;
    full=None (default) probes every entry of arrays up to `max_full_size` entries.
    A BatchNorm in training mode updates its running statistics at every probe; they do not
    enter a training-mode output, so the check is unaffected.
    """
    rng = np.random.default_rng(seed)
    layer.to(np, np.float64)
    x = np.array(backend.to_host(x), dtype=np.float64)
    R = rng.standard_normal(layer.output_shape(x.shape))

    def loss():
        return np.sum(layer.forward(x, training) * R)

    loss()
    analytic = {"x": layer.backward(R)}
    slots = list(layer.named_parameters())
    analytic.update({name: l.grads[k].copy() for name, l, k in slots})
    probes = [("x", x)] + [(name, l.params[k]) for name, l, k in slots]

    errors = {}
    for name, arr in probes:
        if full or (full is None and arr.size <= max_full_size):
            errors[name] = rel_error(analytic[name], numerical_gradient(loss, arr, eps))
        else:
            dirs = [d / np.linalg.norm(d) for d in rng.standard_normal((n_directions,) + arr.shape)]
            num = directional_derivatives(loss, arr, dirs, eps)
            ana = np.array([np.sum(analytic[name] * d) for d in dirs])
            errors[name] = rel_error(ana, num)
    return errors


def _parse_layer(spec):
    """'Conv2D(3, 4, 3, stride=2)' -> a layer, with literal arguments only (nothing is evaluated)."""
    import ast

    from . import layers

    try:
        call = ast.parse(spec, mode="eval").body
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            raise ValueError("not a call")
        cls = getattr(layers, call.func.id, None)
        if not (isinstance(cls, type) and issubclass(cls, layers.Layer)) or cls in (layers.Layer, layers.Sequential):
            raise ValueError(f"{call.func.id} is not a minigan layer")
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError) as e:
        raise SystemExit(f"gradcheck: expected a layer call such as 'Conv2D(3, 4, 3, stride=2)', got {spec!r} ({e})")
    return cls(*args, **kwargs)


def main(argv=None):
    """python -m minigan.gradcheck LAYER --input N C H W [--eval] [--seed S] [--tol T]"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m minigan.gradcheck",
                                description="Check a layer's backward against float64 central differences.",
                                epilog="example: python -m minigan.gradcheck 'ConvTranspose2D(4, 2, 5, stride=2, "
                                       "padding=2, output_padding=1)' --input 2 4 7 7")
    p.add_argument("layer", help="the layer as a call with literal arguments, e.g. 'BatchNorm(8)'")
    p.add_argument("--input", type=int, nargs="+", required=True, help="input shape, e.g. 2 3 8 8")
    p.add_argument("--eval", action="store_true", help="check eval mode (training=False)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-6, help="largest relative error that passes (default 1e-6)")
    args = p.parse_args(argv)
    layer = _parse_layer(args.layer)
    x = np.random.default_rng(args.seed).standard_normal(args.input)
    x = np.where(x >= 0, x + 0.05, x - 0.05)  # away from kinks (LeakyReLU at 0)
    try:
        errors = check_layer(layer, x, training=not args.eval, seed=args.seed)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"gradcheck: {e}")
    print(f"{layer!r} on input {tuple(args.input)} ({'eval' if args.eval else 'training'} mode), float64:")
    for name, err in errors.items():
        print(f"  d{name:10s} relative error {err:.2e}  {'ok' if err <= args.tol else 'FAIL'}")
    bad = [k for k, v in errors.items() if not v <= args.tol]
    print("FAIL: " + ", ".join(bad) if bad else f"all gradients within {args.tol:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
