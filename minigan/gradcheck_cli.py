"""gradcheck's command line: python -m minigan.gradcheck LAYER [--input N C H W] [--eval] [--double].

A layer is named as a built-in's bare name (a small default configuration, EXAMPLES), a call with
literal arguments or layers ('SpectralNorm(Dense(4, 3))'), or your own as 'module:Class(...)' or
'path/to/file.py:Class(...)'. Mistakes are one line and exit code 2; a gradient that is off, exit 1.
"""
import numpy as np

from .gradcheck import double_backward_report, gradient_report, worst_entries

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
    "SpectralNorm": ("SpectralNorm(Conv2D(2, 3, 3, padding=1, rng=0), rng=0)", (2, 2, 4, 4)),
    "MinibatchStdDev": ("MinibatchStdDev(4)", (8, 2, 2, 2)),
    "MinibatchDiscrimination": ("MinibatchDiscrimination(4, 3, 2, rng=0)", (3, 4)),
    "Pack": ("Pack(2)", (4, 3, 2, 2)),
    "DiffAugment": ("DiffAugment(rng=0)", (2, 1, 8, 8)),
}


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


def parse_layer(spec):
    """'Conv2D(3, 4, 3, stride=2)', a bare 'Conv2D', 'SpectralNorm(Dense(4, 3))',
    'package.module:MyLayer(8)' or 'path/to/file.py:MyLayer(8)' -> (layer, default input shape or
    None). Arguments are literals or calls of layers (nothing else in them is evaluated); a module
    or file named is imported, as Python would import it."""
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
    example_shape = None
    if not where and call_text.strip() == call.func.id and call.func.id in EXAMPLES:
        text, example_shape = EXAMPLES[call.func.id]
        call = ast.parse(text, mode="eval").body
    return _build(call, module, where or "minigan.layers", spec), example_shape


def _layer_class(name, module, where):
    """The Layer subclass `name` in `module` (then in minigan.layers), or a UsageError with a guess."""
    import difflib

    from . import layers

    for m in (module, layers):
        cls = getattr(m, name, None)
        if isinstance(cls, type) and issubclass(cls, layers.Layer) and cls is not layers.Layer:
            return cls
    known = sorted({k for m in (module, layers) for k, v in vars(m).items()
                    if isinstance(v, type) and issubclass(v, layers.Layer) and v is not layers.Layer})
    guess = [k for k in known if k.lower() == name.lower()] or difflib.get_close_matches(name, known, 1, 0.6)
    raise UsageError(f"{name} is not a minigan layer in {where}" + (f" (did you mean {guess[0]}?)" if guess else ""))


def _build(call, module, where, spec):
    """Construct the layer an ast.Call describes: its arguments are literals or (nested) layer calls."""
    import ast

    def value(node):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return _build(node, module, where, spec)
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise UsageError(f"expected literal arguments (numbers, strings, tuples) or layers in {spec!r}")

    cls = _layer_class(call.func.id, module, where)
    try:
        return cls(*[value(a) for a in call.args], **{k.arg: value(k.value) for k in call.keywords})
    except (TypeError, ValueError) as e:
        hint = " (hyperparameters after the sizes are keyword-only: eps=..., stride=...)" \
            if "positional argument" in str(e) else ""
        raise UsageError(f"{spec}: {e}{hint}")


def _load_module(where):
    import importlib
    import importlib.util
    import traceback
    from pathlib import Path

    path = Path(where)
    if (where.endswith(".py") or "/" in where) and not path.is_file():
        raise UsageError(f"no such file: {where}")
    try:
        if where.endswith(".py") or "/" in where:
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(where)
    except ImportError as e:
        raise UsageError(f"cannot import {where}: {e}")
    except Exception as e:  # the file itself fails: say where in it, in one line (a layer the contract refuses too)
        package = str(Path(__file__).parent)
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if not (f.filename.startswith(package) or f.filename.startswith("<"))] or [None]
        line = getattr(e, "lineno", None) or (frames[-1] and frames[-1].lineno)
        file = Path(getattr(e, "filename", None) or (frames[-1] and frames[-1].filename) or where).name
        raise UsageError(f"cannot load {where}: {type(e).__name__} at {file} line {line}: {e}")


def _parser():
    from .cli import Parser

    p = Parser(prog="python -m minigan.gradcheck",
               description="Check a layer's backward (or, with --double, its backward_backward) against float64 "
                           "central differences, in reference mode (the readable im2col/col2im, no kept buffers).",
               epilog="examples: python -m minigan.gradcheck Conv2D --double;  python -m minigan.gradcheck "
                      "'SpectralNorm(Dense(4, 3))' --input 2 4;  python -m minigan.gradcheck my_layers.py:AvgPool2D "
                      "--input 2 3 8 8")
    p.add_argument("layer", help="a built-in layer's name (a small default configuration), a call with literals "
                                 "or layers as arguments ('BatchNorm(8)', 'SpectralNorm(Dense(4, 3))'), or your own "
                                 "layer as 'module:Class(...)' or 'path/to/file.py:Class(...)'")
    p.add_argument("--input", type=int, nargs="+", help="input shape, e.g. 2 3 8 8 (a bare name has a default)")
    p.add_argument("--eval", action="store_true", help="check eval mode (training=False)")
    p.add_argument("--double", action="store_true", help="check backward_backward: Q = <backward(dy), G> "
                                                         "differentiated in dy, x and the parameters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-6, help="largest relative error that passes (default 1e-6)")
    return p


def main(argv=None):
    """python -m minigan.gradcheck LAYER [--input N C H W] [--eval] [--double] [--seed S] [--tol T]"""
    import sys

    from .layers import reference_mode

    args = _parser().parse_args(argv)
    try:
        layer, shape = parse_layer(args.layer)
        shape = tuple(args.input) if args.input else shape
        if shape is None:
            raise UsageError(f"--input is needed for {args.layer} (the input shape, e.g. --input 2 3 8 8)")
        if any(d < 1 for d in shape):
            raise UsageError(f"--input: expected positive sizes, got {' '.join(map(str, shape))}")
        try:
            layer.output_shape(shape)
        except ValueError as e:
            raise UsageError(f"--input {' '.join(map(str, shape))}: {e}")
    except UsageError as e:
        print(f"gradcheck: {e}", file=sys.stderr)
        return 2
    x = np.random.default_rng(args.seed).standard_normal(shape)
    x = np.where(x >= 0, x + 0.05, x - 0.05)  # away from kinks (LeakyReLU at 0)
    report_fn = double_backward_report if args.double else gradient_report
    try:
        with reference_mode():
            report = report_fn(layer, x, training=not args.eval, seed=args.seed)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
        print(f"gradcheck: {e}", file=sys.stderr)
        return 1
    print(f"{layer!r} on input {shape} ({'eval' if args.eval else 'training'} mode), float64, reference mode"
          + (", backward_backward, Q = <backward(dy), G>:" if args.double else ":"))
    names = {k: (f"∂Q/∂{k}" if args.double else f"d{k}") for k in report}  # one name per array, used throughout
    for k, probe in report.items():
        ok = probe.error <= args.tol
        print(f"  {names[k]:10s} relative error {probe.error:.2e}  {'ok  ' if ok else 'FAIL'}  ({probe.how})")
        if not ok:
            print("\n".join(f"      {line}" for line in worst_entries(probe)))
    bad = [names[k] for k, probe in report.items() if not probe.error <= args.tol]
    print("FAIL: " + ", ".join(bad) if bad else f"all gradients within {args.tol:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
