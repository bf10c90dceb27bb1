"""Numerical gradients by central differences in float64, to check any layer's backward and the
derivative of its backward.

    from minigan.gradcheck import check_layer, check_double_backward
    errors = check_layer(Conv2D(3, 4, 3, stride=2), x)   # {'x': 3e-11, 'W': 2e-11, 'b': 1e-11}
    errors = check_double_backward(Conv2D(3, 4, 3, stride=2), x)   # {'dy': …, 'x': 0.0, 'W': …, 'b': 0.0}

The scalar checked is L = <forward(x), R> for a fixed random R, so backward(R) gives
dL/dx and dL/dparams; each is compared with (L(θ + eps·e) − L(θ − eps·e)) / (2·eps),
either for every entry e (full) or along a few random unit directions e (for arrays
too large to probe entry by entry, as chainer's check_backward does). check_double_backward
does the same to Q = <backward(dy), G>, as chainer's check_double_backward does. The command
line, python -m minigan.gradcheck, is in gradcheck_cli.py.
"""
import copy
from typing import NamedTuple

import numpy as np

from . import backend


def rel_error(analytic, numeric, noise=0.0):
    """(‖a − n‖ − noise)⁺ / max(‖a‖, ‖n‖): the relative disagreement beyond `noise`, the norm of the
    numeric gradient's own rounding noise (0 by default); 0 when both are zero."""
    a, n = np.ravel(analytic).astype(np.float64), np.ravel(numeric).astype(np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(n))
    return 0.0 if scale == 0 else float(max(np.linalg.norm(a - n) - noise, 0.0) / scale)


def difference_noise(scale, size, eps=1e-6, ulps=10):
    """The rounding noise to allow in the norm of a central-difference gradient over `size`
    entries of a function that sums terms of magnitude `scale`: ~ulps · u · scale / eps per entry.
    `scale` is the terms' size, not the function's value: a small difference of large sums (an MMD²
    near 0) keeps their rounding. A gradient near zero is otherwise compared with that noise alone."""
    return ulps * np.finfo(np.float64).eps * scale / eps * np.sqrt(size)


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


class Probe(NamedTuple):
    """One array's comparison: the relative error, how the array was probed, and the two gradients
    compared (whole arrays when every entry was probed, else one value per direction)."""
    error: float
    how: str
    analytic: np.ndarray
    numeric: np.ndarray
    full: bool


def _compare(f, arr, analytic, rng, *, full, n_directions, eps, max_full_size, noisy=False, floor_at=1.0):
    """Probe the scalar f() along `arr` (every entry, or random unit directions) against `analytic`;
    with `noisy`, the numeric gradient's own error is not counted (check_double_backward says why),
    at least 64 ulps of max(|f|, floor_at) over 2·eps."""
    analytic = np.asarray(analytic, dtype=np.float64)
    if full or (full is None and arr.size <= max_full_size):
        probe, ana, every = (lambda e: numerical_gradient(f, arr, e)), analytic, True
        how = f"full, {arr.size:,} entries"
    else:
        dirs = [d / np.linalg.norm(d) for d in rng.standard_normal((n_directions,) + arr.shape)]
        probe, every = (lambda e: directional_derivatives(f, arr, dirs, e)), False
        ana = np.array([np.sum(analytic * d) for d in dirs])
        how = f"{n_directions} random directions, {arr.size:,} entries"
    numeric = probe(eps)
    plain = error = rel_error(ana, numeric)
    if noisy and plain > 1e-8:
        floor = 64 * np.finfo(np.float64).eps * max(abs(float(f())), floor_at) / (2 * eps) * np.sqrt(numeric.size)
        noise = max(2 * float(np.linalg.norm(numeric - probe(eps / 2))), floor)
        error = rel_error(ana, numeric, noise)
        how += f"; {plain:.1e} before the numeric's own error, ~{noise:.0e}"
    return Probe(error, how, ana, numeric, every)


def _float64_copy(layer, training):
    """A float64 host copy with every draw held (and SpectralNorm's u, v settled in training)."""
    from .layers import SpectralNorm

    layer = copy.deepcopy(layer).to(np, np.float64)
    for leaf in layer.leaves():
        leaf.hold_draw = True
        if training and isinstance(leaf, SpectralNorm):
            leaf.settle()
    return layer


def check_layer(layer, x, *, training=True, full=None, n_directions=6, seed=0, eps=1e-6,
                max_full_size=256):
    """Compare `layer`'s backward with numerical gradients; return {name: relative error}.

    Works on a float64 host copy of the layer (the caller's layer is left as it was); x is
    copied to float64. Names: "x" for the input gradient, then each parameter ("W",
    "3.gamma", …). full=True probes every entry, full=False `n_directions` random unit
    directions per array; full=None (default) probes every entry of arrays up to
    `max_full_size` entries. A layer that draws random numbers has its first draw held for
    every probe (Layer.hold_draw). A BatchNorm in training mode updates its running
    statistics at every probe; they do not enter a training-mode output. A SpectralNorm in
    training mode runs its power iteration at every probe: its u, v are settled first
    (SpectralNorm.settle), so that every probe sees the true σ(W). Where the plain error is
    above 1e-8 (a gradient far below the loss's own scale: a bias behind a weight near 0), the
    error counted is the part beyond the numeric gradient's own rounding, as in
    check_double_backward (it says how), but with that rounding's floor scaled by |loss| alone,
    so that a layer whose whole output is tiny is still held to its backward.
    """
    report = gradient_report(layer, x, training=training, full=full, n_directions=n_directions,
                             seed=seed, eps=eps, max_full_size=max_full_size)
    return {name: probe.error for name, probe in report.items()}


def gradient_report(layer, x, *, training=True, full=None, n_directions=6, seed=0, eps=1e-6,
                    max_full_size=256):
    """check_layer's work: {name: Probe}."""
    from .layers.base import check_backward, check_forward

    rng = np.random.default_rng(seed)
    layer = _float64_copy(layer, training)
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
    return {name: _compare(loss, arr, analytic[name], rng, full=full, n_directions=n_directions, eps=eps,
                           max_full_size=max_full_size, noisy=True, floor_at=0.0) for name, arr in probes}


def check_double_backward(layer, x, *, dy=None, training=True, full=None, n_directions=6, seed=0, eps=1e-6,
                          max_full_size=256):
    """Compare `layer`'s backward_backward with central differences of its backward; return
    {name: relative error} for "dy", "x" and each parameter.

    The scalar differentiated is Q(x, θ, dy) = ⟨backward(dy), G⟩ for a fixed random G of x's
    shape, re-running forward(x) for each probe: backward_backward(dy, G) gives ∂Q/∂dy, ∂Q/∂x
    (g_x, or 0 where it returns None) and ∂Q/∂θ in grads. dy defaults to a random array of the
    output's shape. Everything else is as check_layer: a float64 copy, draws held, full or
    directional probes, SpectralNorm settled in training. One difference (check_layer does the
    same with a floor scaled by |loss| alone): second derivatives are
    often exactly 0 (through a bias) or far below Q's scale (a shift-invariant layer), where central
    differences see only Q's rounding. So where the plain error is above 1e-8, the probe is taken
    again at eps/2, and twice the difference (the numeric gradient's own error, at least 64 ulps of
    Q over 2·eps) is not counted against the analytic gradient. The half step stays inside the full
    step's interval, so it crosses a kink only where the full step did: a clean probe gets an
    honest estimate.
    """
    report = double_backward_report(layer, x, dy=dy, training=training, full=full, n_directions=n_directions,
                                    seed=seed, eps=eps, max_full_size=max_full_size)
    return {name: probe.error for name, probe in report.items()}


def double_backward_report(layer, x, *, dy=None, training=True, full=None, n_directions=6, seed=0, eps=1e-6,
                           max_full_size=256):
    """check_double_backward's work: {name: Probe}."""
    from .layers import Sequential
    from .layers.base import check_backward, check_backward_backward, check_forward

    rng = np.random.default_rng(seed)
    layer = _float64_copy(layer, training)
    x = np.array(backend.to_host(x), dtype=np.float64)
    y_shape = tuple(layer.output_shape(x.shape))
    if dy is None:
        dy = rng.standard_normal(y_shape)
    else:
        dy = np.array(backend.to_host(dy), dtype=np.float64)
        if dy.shape != y_shape:
            raise ValueError(f"check_double_backward: expected dy of the output's shape {y_shape}, got {dy.shape}")
    G = rng.standard_normal(x.shape)

    def backward(keep):
        if isinstance(layer, Sequential):
            return layer.backward(dy, param_grads=False, create_graph=keep)
        return layer.backward(dy, param_grads=False)

    def Q():
        layer.forward(x, training)
        return np.sum(backward(False) * G)

    check_forward(layer, x, layer.forward(x, training))
    dx = backward(True)
    check_backward(layer, dx, False)
    g_dy, g_x = layer.backward_backward(dy, G)
    check_backward_backward(layer, g_dy, g_x, True)
    slots = list(layer.named_parameters())
    analytic = {"dy": g_dy, "x": np.zeros_like(x) if g_x is None else g_x}
    analytic.update({name: l.grads[k].copy() for name, l, k in slots})
    probes = [("dy", dy), ("x", x)] + [(name, l.params[k]) for name, l, k in slots]
    return {name: _compare(Q, arr, analytic[name], rng, full=full, n_directions=n_directions, eps=eps,
                           max_full_size=max_full_size, noisy=True) for name, arr in probes}


def worst_entries(probe, count=3):
    """Lines for a failed probe: its `count` worst entries (index, analytic, numeric) and the ratio
    of the two gradients' norms (a dropped factor shows as that factor: ×4 for a missing 1/k² at k = 2)."""
    a, n = probe.analytic.ravel(), probe.numeric.ravel()
    lines = []
    for i in np.argsort(-np.abs(a - n), kind="stable")[:count]:
        where = (f"at {tuple(int(j) for j in np.unravel_index(i, probe.analytic.shape))}" if probe.full
                 else f"along direction {i}")
        lines.append(f"{where}: analytic {a[i]:+.6e}, numeric {n[i]:+.6e}")
    na, nn = np.linalg.norm(a), np.linalg.norm(n)
    lines.append(f"scale: |analytic| / |numeric| = ×{na / nn:.4g}" if nn else
                 f"scale: numeric is 0, |analytic| = {na:.3e}")
    return lines


if __name__ == "__main__":
    # python -m minigan.gradcheck LAYER [--input N C H W] [--eval] [--double] [--seed S] [--tol T]:
    # the command line is gradcheck_cli.py's (it imports this module; this one never imports it).
    import runpy
    runpy.run_module("minigan.gradcheck_cli", run_name="__main__")
