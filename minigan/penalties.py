"""Penalties on D's input gradient — R1, R2, WGAN-GP, DRAGAN — with their gradient with respect to
D's parameters, which is a derivative of D's backward (the second-order pass, Sequential.backward_backward).

    value, grads = gradient_penalty(D, x, "r1", 10.0)   # grads keyed like D.grads

With g_n = ∇ₓ Σ D(x) at sample n (every output summed, so the batch coupling of BatchNorm and the
minibatch layers is included, as torch.autograd.grad(D(x).sum(), x, create_graph=True) defines it):

    kind      x, drawn by the caller                                value
    r1        real samples (Mescheder et al. 2018; γ = 10)            weight/2 · mean_n ‖g_n‖²
    r2        fake samples G(z)                                       weight/2 · mean_n ‖g_n‖²
    wgan-gp   interpolates(real, fake, rng) (Gulrajani et al. 2017)   weight · mean_n (‖g_n‖ − 1)²
    dragan    dragan_perturb(real, rng) (Kodali et al. 2017)          weight · mean_n (‖g_n‖ − 1)²
"""
import math

from . import backend, init
from .layers import Sequential

KINDS = ("r1", "r2", "wgan-gp", "dragan")


def gradient_penalty(D, x, kind, weight, *, input_grad=False):
    """(value, grads), or (value, grads, dx) with input_grad=True.

    value: a 0-d array on x's backend (nothing is read to the host). grads: {name: new array},
    keyed like D.grads, ∂value/∂θ_D. dx: ∂value/∂x, of x's shape; it comes free (the pass below
    runs its backward down to D's input anyway), and it is how R2 on fakes reaches G.

    The pass, in D's training mode:
      g = D.backward(1, create_graph=True) after D.forward(x)     (g_n = ∇ₓ Σ D(x), sample n)
      G = ∂value/∂g:  weight · g / N                        (r1, r2)
                      2·weight · (‖g_n‖ − 1)/‖g_n‖ · g_n / N   (wgan-gp, dragan; 0 where g_n = 0)
      D.backward_backward(1, G) -> ∂value/∂θ in D's grads, and ∂value/∂x.

    D is left as it was: its buffers (BatchNorm's running statistics, SpectralNorm's u, v), its
    random layers' generators and D.grads (the penalty is not another training forward). Its
    layers' caches are the penalty's afterwards: call it before D's forward and backward pair of
    a step, or after, not between them.
    """
    if not isinstance(D, Sequential):
        raise TypeError(f"gradient_penalty: expected D to be a Sequential, got {type(D).__name__}")
    if kind not in KINDS:
        raise ValueError(f"gradient_penalty: expected kind to be one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"gradient_penalty: expected a finite weight >= 0, got {weight!r}")
    if not hasattr(x, "shape") or len(x.shape) < 2:
        raise ValueError(f"gradient_penalty: expected a batch x of shape (N, ...), got "
                         f"{tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__}")
    D.output_shape(x.shape)  # a wrong shape is refused here, before any state is saved or changed
    xp = backend.xp_of(x)
    saved = [(leaf, {k: v.copy() for k, v in leaf.buffers.items()}, leaf._draw,
              None if leaf.rng is None else leaf.rng.bit_generator.state) for leaf in D.leaves()]
    grads = [(leaf, k, leaf.grads.get(k)) for _, leaf, k in D.named_parameters()]
    try:
        ones = xp.ones(D.output_shape(x.shape), x.dtype)
        D.forward(x, training=True)
        g = D.backward(ones, param_grads=False, create_graph=True)
        N = x.shape[0]
        sq = (g * g).reshape(N, -1).sum(axis=1)  # ‖g_n‖²
        if kind in ("r1", "r2"):
            value = sq.mean() * (weight / 2)
            adjoint = g * (weight / N)
        else:
            norm = xp.sqrt(sq)
            value = ((norm - 1) ** 2).mean() * weight
            # ‖g_n‖ below 1e-12: g_n/‖g_n‖ stays bounded (and 0 at g_n = 0), where 1/tiny would overflow
            coef = (2 * weight / N) * (norm - 1) / xp.maximum(norm, 1e-12)
            adjoint = g * coef.reshape((N,) + (1,) * (g.ndim - 1))
        _, dx = D.backward_backward(ones, adjoint)
        out = {name: D_grad for name, D_grad in D.grads.items()}
    finally:
        D.release_graph()
        for leaf, buffers, draw, state in saved:
            leaf.buffers.update(buffers)
            leaf._draw = draw
            if state is not None:
                leaf.rng.bit_generator.state = state
        for leaf, k, g_old in grads:
            leaf.grads[k] = g_old
    value = xp.asarray(value)
    if not input_grad:
        return value, out
    return value, out, xp.zeros_like(x) if dx is None else dx


def interpolates(real, fake, rng):
    """WGAN-GP's points: x̂ = ε·real + (1 − ε)·fake, one ε ~ U[0, 1) per sample, drawn on the host
    from `rng` (a numpy Generator or a seed) and moved to the batch's backend."""
    if tuple(real.shape) != tuple(fake.shape):
        raise ValueError(f"interpolates: expected real and fake batches of one shape, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    N = real.shape[0]
    eps = init.as_generator(_explicit(rng, "interpolates")).random(N).reshape((N,) + (1,) * (real.ndim - 1))
    eps = backend.to_backend(eps, backend.xp_of(real), real.dtype)
    return fake + eps * (real - fake)


def dragan_perturb(real, rng, scale=0.5):
    """DRAGAN's points: x + scale·std(x)·u, u ~ U[0, 1) per entry drawn on the host from `rng` (a numpy
    Generator or a seed), std over the whole batch (the common port's recipe, scale 0.5)."""
    u = init.as_generator(_explicit(rng, "dragan_perturb")).random(real.shape)
    u = backend.to_backend(u, backend.xp_of(real), real.dtype)
    return real + u * (real.std() * scale)


def _explicit(rng, name):
    if rng is None:
        raise TypeError(f"{name}: expected rng, a numpy Generator or an int seed (an explicit one, so that a "
                        f"run can be repeated), got None")
    return rng
