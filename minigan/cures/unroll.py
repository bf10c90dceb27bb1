"""Unrolled D (Metz et al. 2017): G's step is taken against D as it will be K steps ahead."""
import numpy as np

from .base import BadOption, Cure, Option, count


class Unroll(Cure):
    """Before G's step, D's parameters, buffers, Adam moments and the D-step state of the cures
    (LeCam's anchors) are saved and D takes K more steps (its own Adam steps) on the same batch;
    G's gradient is taken against that D, then D is put back.

    unroll_order 1: ∂L_G/∂θ_G with θ_D^K held fixed (the common port's surrogate).
    unroll_order 2: the gradient of L_G(θ_G, θ_D^K(θ_G)) as Metz et al. take it, through the K
    Adam steps. Reverse mode over the steps (second_order_correction): with λ_p, λ_m, λ_v the
    adjoints of D's parameters and Adam's moments after step k + 1, and that step's
        m' = β1 m + (1−β1) g,  v' = β2 v + (1−β2) g²,  p' = p − a m'/(s + ε),  s = √(v'/c2), a = lr/c1,
    the adjoint of the step's gradient g = ∇_D L_D(p, θ_G) is
        μ_m = λ_m − λ_p a/(s + ε),   μ_v = λ_v + λ_p a m' / (2 s c2 (s + ε)²)
        λ_g = (1−β1) μ_m + 2 (1−β2) g μ_v,
    and the step hands back λ_m ← β1 μ_m, λ_v ← β2 μ_v, λ_p ← λ_p + H_DD λ_g, while G gains
    H_GD λ_g. Both Hessian-vector products are one central difference of D's gradients:
        [∇ L_D(p + ε λ_g) − ∇ L_D(p − ε λ_g)] / (2ε)
    in D's parameters, and in the fake batch (then through G's backward). It starts from
    λ_p = ∂L_G/∂θ_D^K and costs 2K more D gradients and K backwards of G. It is exact for D's
    losses and layers (tests/test_trainer_gradients.py); held constant, as the first-order
    version holds all of D, are LeCam's anchors across the steps and the real batch's features
    in G's terms at D's features (feature matching, feature MMD), and the H_GD product assumes
    D's gradient is a true gradient (--d-mmd-weight's, which holds f(x), is not).
    """
    name = "unroll"
    options = (count("unroll", 0, 0, "G trains against D unrolled K steps ahead, then D is restored (Metz et "
                     "al. 2017); 0 is off.", metavar="K"),
               Option("unroll_order", 1, "with --unroll: 1, G's gradient against the unrolled D held fixed "
                      "(first-order); 2, through the K steps of D's Adam, as Metz et al. (second-order, about "
                      "3 times the unrolled steps' cost)", check=lambda v: v in (1, 2), expect="1 or 2", type=int,
                      choices=[1, 2]))

    @classmethod
    def on(cls, values):
        return values["unroll"] > 0

    def __init__(self, values):
        self.k, self.order = values["unroll"], values["unroll_order"]
        self.saved = None

    def check(self, gan):
        if self.order == 2 and any(type(c).d_extra is not Cure.d_extra for c in gan.cures):
            raise BadOption("unroll_order=2: the second-order term does not yet differentiate a gradient penalty "
                            "(--gp); use unroll_order=1 with it", "--unroll-order 2 with --gp is not built; "
                            "use --unroll-order 1")

    def attach(self, gan):
        gan.d_grads_in_g_step = self.order == 2

    def before_g(self, gan, real, fake):
        self.saved = snapshot(gan)
        self.steps = []
        for _ in range(self.k):
            if self.order == 2:
                self.steps.append(snapshot(gan))
            gan.d_update(real, fake)

    def g_extra(self, gan, real, fake):
        if self.order == 2:
            second_order_correction(gan, self.steps, real, fake)
        return 0.0

    def after_g(self, gan, real, fake):
        restore(gan, self.saved)
        self.saved, self.steps = None, []


def second_order_correction(gan, steps, real, fake):
    """Add to G's gradients the term through the unrolled steps (the class docstring): `steps`
    holds D's state before each of them; D stands after the last, with ∂L_G/∂θ_D^K in D.grads
    and G's cache from the step's fake batch."""
    G, D, adam, xp = gan.G, gan.D, gan.opt["D"], gan.xp
    lam_p = {name: layer.grads[k].copy() for name, layer, k in D.named_parameters()}
    lam_m = {name: xp.zeros_like(v) for name, v in lam_p.items()}
    lam_v = {name: xp.zeros_like(v) for name, v in lam_p.items()}
    total = {name: g.copy() for name, g in G.grads.items()}
    rng_after = D.rng_states()
    b1, b2 = adam.betas
    after = adam.state_dict()
    for k in reversed(range(len(steps))):
        before, moments = steps[k][1], after if k == len(steps) - 1 else steps[k + 1][1]
        t = int(moments["t"])
        a, c2 = adam.lr / (1 - b1 ** t), 1 - b2 ** t
        lam_g = {}
        for name in lam_p:
            m, m1, v1 = before.get("m/" + name), moments["m/" + name], moments["v/" + name]
            g = (m1 - (0 if m is None else b1 * m)) / (1 - b1)  # the step's gradient, from its moments
            s = xp.sqrt(v1 / c2)
            den = s + adam.eps
            mu_m = lam_m[name] - lam_p[name] * (a / den)
            mu_v = lam_v[name] + lam_p[name] * (a * m1 / (2 * xp.maximum(s, 1e-30) * c2 * den * den))
            lam_g[name] = (1 - b1) * mu_m + 2 * (1 - b2) * g * mu_v
            lam_m[name], lam_v[name] = b1 * mu_m, b2 * mu_v
        h_d, h_fake = _hessian_products(gan, steps[k], lam_g, real, fake)
        for name in lam_p:
            lam_p[name] = lam_p[name] + h_d[name]
        G.backward(h_fake)  # H_GD λ_g: through the fake batch to G's parameters
        for name, g in G.grads.items():
            total[name] += g
    for name, layer, key in G.named_parameters():
        layer.grads[key] = total[name]
    D.load_rng_states(rng_after)


def _hessian_products(gan, state, lam, real, fake):
    """(H_DD λ, ∂/∂fake ⟨∇_D L_D, λ⟩) at D's `state`, by one central difference of d_gradients
    along λ, D's random layers drawing the same numbers on both sides. The step ε is
    eps^(1/3) · max(|θ_D|, 1) / |λ| (eps the dtype's: the balance of truncation and rounding)."""
    D, xp = gan.D, gan.xp
    slots = list(D.named_parameters())
    dtype = next(iter(lam.values())).dtype
    p_norm = xp.sqrt(sum((layer.params[k] ** 2).sum() for _, layer, k in slots))
    l_norm = xp.sqrt(sum((v ** 2).sum() for v in lam.values()))
    eps = (float(np.finfo(dtype).eps) ** (1 / 3) * xp.maximum(p_norm, 1) / xp.maximum(l_norm, 1e-30)).astype(dtype)
    sides = []
    for sign in (1, -1):
        restore(gan, state, rng=True)
        for name, layer, k in slots:
            layer.params[k] = layer.params[k] + (sign * eps) * lam[name]
        _, _, _, dfake = gan.d_gradients(real, fake)
        sides.append(({name: layer.grads[k].copy() for name, layer, k in slots}, dfake))
    (gp, fp), (gm, fm) = sides
    scale = 1 / (2 * eps)
    return {n: (gp[n] - gm[n]) * scale for n in gp}, (fp - fm) * scale


def snapshot(gan):
    """Copies of D's parameters and buffers, of its Adam state, of the state of the cures whose
    state changes in D's step, and of D's random generators."""
    return ({k: v.copy() for k, v in gan.D.state_dict().items()},
            {k: v.copy() for k, v in gan.opt["D"].state_dict().items()},
            {c.name: c.state_dict() for c in gan.cures if c.in_d_step},
            gan.D.rng_states())


def restore(gan, saved, rng=False):
    """Put D back as snapshot() saw it; its random generators too when `rng` (the unrolled steps'
    draws are otherwise kept, as a run without unrolling would not have drawn them)."""
    model, optimizer, cures, states = saved  # loaded as copies: Adam updates D's arrays in place
    gan.D.load_state_dict({k: v.copy() for k, v in model.items()})
    gan.opt["D"].load_state_dict({k: v.copy() for k, v in optimizer.items()})
    for c in gan.cures:
        if c.in_d_step:
            c.load_state_dict(cures[c.name], gan.xp)
    if rng:
        gan.D.load_rng_states(states)
