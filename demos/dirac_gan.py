"""DiracGAN (Mescheder et al. 2018), the smallest GAN there is, built from minigan's own layers, losses
and penalties: why GAN training circles instead of converging, and what makes it converge.

The data is one point at 0; the generator is G(z) = θ (Dense(1, 1) on z = 1), the discriminator
D(x) = ψ·x (Dense(1, 1)). The equilibrium is θ = ψ = 0. Gradient descent on the two losses moves
(θ, ψ) along the vector field v = (−∂L_G/∂θ, −∂L_D/∂ψ), which the engine computes here with its
forward, backward and second-order passes; the figure shows v and a path of gradient descent
for each game (docs/dirac_gan.md says what each panel shows and why).

    python demos/dirac_gan.py                      # writes runs/dirac_gan/dirac_gan.png
    python demos/dirac_gan.py --out docs/images --gamma 1 --lr 0.1 --steps 500
"""
import math
import sys
from pathlib import Path

import numpy as np

from minigan import cli, losses
from minigan.layers import Dense, Sequential
from minigan.penalties import KINDS, dragan_perturb, gradient_penalty, interpolates


def minimax_g(s):
    """The paper's G loss: minus D's loss on the fakes (G minimises the L that D maximises), as
    (value, gradient) from the non-saturating loss's D term."""
    value, grad = losses.NonSaturating.d_fake(s)
    return -value, -grad


class DiracGAN:
    """One game's vector field, computed by the engine: game(θ, ψ) -> (θ̇, ψ̇) = (−∂L_G/∂θ, −∂L_D/∂ψ).

    D's loss is the adversarial loss's two terms (minigan.losses.ADVERSARIAL[loss]) plus, if asked,
    gradient_penalty(D, x, penalty, weight) at x drawn as its kind says (real, fake, interpolates,
    perturbed real); G's loss is the adversarial loss's G term, or the paper's minimax one.
    minigan's D gives the logit of "real", the paper's D(x) = ψx scores fakes high (its loss is
    f(D(G(z))) + f(−D(x))): the Dense layer holds W = −ψ, so that θ and ψ are the paper's.
    """

    def __init__(self, loss="ns", *, g_loss=None, penalty=None, weight=0.0, seed=0):
        if penalty is not None and penalty not in KINDS:
            raise ValueError(f"DiracGAN: expected a penalty of {', '.join(KINDS)}, got {penalty!r}")
        self.loss = losses.ADVERSARIAL[loss]
        self.g_loss = minimax_g if g_loss == "minimax" else self.loss.g
        self.penalty, self.weight = penalty, weight
        self.G = Sequential(Dense(1, 1, bias=False)).to(np, np.float64)
        self.D = Sequential(Dense(1, 1, bias=False)).to(np, np.float64)
        self.rng = np.random.default_rng(seed)  # the penalties' interpolates and perturbations

    def __call__(self, theta, psi):
        G, D = self.G, self.D
        G.layers[0].params["W"] = np.array([[theta]], np.float64)
        D.layers[0].params["W"] = np.array([[-psi]], np.float64)
        real, fake = np.zeros((1, 1)), G.forward(np.ones((1, 1)))
        _, d_real = self.loss.d_real(D.forward(real))  # D's step: the real and the fake term, two passes
        D.backward(d_real)
        dW = D.grads["0.W"].copy()
        _, d_fake = self.loss.d_fake(D.forward(fake))
        D.backward(d_fake)
        dW += D.grads["0.W"]
        if self.penalty:
            x = {"r1": real, "r2": fake, "wgan-gp": interpolates(real, fake, self.rng),
                 "dragan": dragan_perturb(real, self.rng)}[self.penalty]
            dW += gradient_penalty(D, x, self.penalty, self.weight)[1]["0.W"]
        _, d_g = self.g_loss(D.forward(fake))  # G's step: through D, whose grads it leaves alone
        G.backward(D.backward(d_g, param_grads=False))
        return -float(G.grads["0.W"][0, 0]), float(dW[0, 0])  # ψ = −W: −∂L_D/∂ψ = +∂L_D/∂W

    def g_value(self, theta, psi):
        """L_G at (θ, ψ), by the engine's forward passes."""
        self.G.layers[0].params["W"] = np.array([[theta]], np.float64)
        self.D.layers[0].params["W"] = np.array([[-psi]], np.float64)
        return float(self.g_loss(self.D.forward(self.G.forward(np.ones((1, 1)))))[0])


class Unrolled:
    """The unrolled GAN (Metz et al. 2017) on a game: G's gradient through K steps of D's gradient
    descent (step eta); D's own component unchanged. With ψ_0 = ψ, ψ_{k+1} = ψ_k + η · ψ̇(θ, ψ_k)
    (the game's field),
        order 2:  θ̇ = −d/dθ L_G(θ, ψ_K(θ))   (the second-order term included: a central difference
                  in θ of the engine's L_G, h = 1e-5, exact to about h² on this smooth game)
        order 1:  θ̇ = θ̇_game(θ, ψ_K)          (ψ_K held: the first-order surrogate)."""

    def __init__(self, game, k, eta, order=2):
        self.game, self.k, self.eta, self.order = game, k, eta, order

    def unrolled_psi(self, theta, psi):
        for _ in range(self.k):
            psi = psi + self.eta * self.game(theta, psi)[1]
        return psi

    def __call__(self, theta, psi, h=1e-5):
        if self.order == 1:
            return self.game(theta, self.unrolled_psi(theta, psi))[0], self.game(theta, psi)[1]
        loss = [self.game.g_value(t, self.unrolled_psi(t, psi)) for t in (theta + h, theta - h)]
        return -(loss[0] - loss[1]) / (2 * h), self.game(theta, psi)[1]


def panels(gamma, *, unroll=5, eta=0.5):
    """(title, field) for each panel, in order; a field is any callable (θ, ψ) -> (θ̇, ψ̇)."""
    return [("GAN (the paper's minimax L)", DiracGAN("ns", g_loss="minimax")),
            ("GAN, non-saturating G (minigan's ns)", DiracGAN("ns")),
            ("WGAN", DiracGAN("wgan")),
            (f"WGAN-GP, λ = {gamma:g}", DiracGAN("wgan", penalty="wgan-gp", weight=gamma)),
            (f"GAN + R1, γ = {gamma:g}", DiracGAN("ns", g_loss="minimax", penalty="r1", weight=gamma)),
            (f"unrolled GAN, {unroll} steps of D (η = {eta:g})", Unrolled(DiracGAN("ns", g_loss="minimax"), unroll, eta))]


def descend(field, start, lr, steps, alternating=False):
    """Gradient descent from start = (θ, ψ): (steps + 1, 2) points, fewer if it leaves |·| < 1e6.
    Simultaneous: both from the same point; alternating: D first, then G at D's new ψ."""
    theta, psi = start
    path = [(theta, psi)]
    for _ in range(steps):
        if alternating:
            psi += lr * field(theta, psi)[1]
            theta += lr * field(theta, psi)[0]
        else:
            d_theta, d_psi = field(theta, psi)
            theta, psi = theta + lr * d_theta, psi + lr * d_psi
        path.append((theta, psi))
        if not max(abs(theta), abs(psi)) < 1e6:
            break
    return np.array(path)


def plot(path, runs, *, lim, grid, lr, steps, alternating):
    """One panel per run: the engine's field as arrows (length scaled per panel), the path in red."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = 3
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 4.3 * rows), squeeze=False)
    ticks = np.linspace(-lim, lim, grid)
    T, P = np.meshgrid(ticks, ticks)
    for ax, (title, field, points) in zip(axes.ravel(), runs):
        V = np.array([[field(t, p) for t, p in zip(row_t, row_p)] for row_t, row_p in zip(T, P)])
        ax.quiver(T, P, V[..., 0], V[..., 1], color="0.55", angles="xy", width=0.004)
        ax.plot(points[:, 0], points[:, 1], color="tab:red", lw=1.2)
        ax.plot(*points[0], "o", color="tab:red", ms=4)
        ax.plot(0, 0, "k*", ms=9)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="θ (generator)", ylabel="ψ (discriminator)", title=title)
        ax.set_aspect("equal")
    for ax in axes.ravel()[len(runs):]:
        ax.axis("off")
    fig.suptitle(f"DiracGAN: the engine's vector field and {steps} steps of "
                 f"{'alternating' if alternating else 'simultaneous'} gradient descent, step {lr:g}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv=None):
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("--out", type=Path, default=Path("runs/dirac_gan"), help="folder for dirac_gan.png "
                                                                          "(default runs/dirac_gan)")
    p.add_argument("--lr", type=float, default=0.1, help="gradient descent's step size (default 0.1)")
    p.add_argument("--steps", type=int, default=500, help="steps of gradient descent (default 500)")
    p.add_argument("--gamma", type=float, default=1.0, help="the penalties' weight, R1's γ and WGAN-GP's λ "
                                                            "(default 1)")
    p.add_argument("--start", type=float, nargs=2, default=[1.0, 1.0], metavar=("THETA", "PSI"),
                   help="where descent starts (default 1 1)")
    p.add_argument("--alternating", action="store_true", help="alternating steps (D, then G) instead of "
                                                               "simultaneous ones")
    p.add_argument("--grid", type=int, default=17, help="arrows per side (default 17)")
    p.add_argument("--lim", type=float, default=2.5, help="the panels show [-lim, lim]² (default 2.5)")
    args = p.parse_args(argv)
    cli.check_numbers(p, args, at_least_1=("steps",), positive=("lr", "lim"))
    if args.grid < 2:
        p.error(f"--grid must be at least 2, got {args.grid}")
    if not (math.isfinite(args.gamma) and args.gamma >= 0):
        p.error(f"expected --gamma >= 0 (finite), got {args.gamma}")
    if not all(math.isfinite(v) for v in args.start):
        p.error(f"expected a finite --start, got {args.start[0]} {args.start[1]}")
    return cli.run("dirac_gan.py", run, args)


def run(args):
    runs = []
    print(f"{'game':38s} {'|(θ, ψ)| at the end':>20s}")
    for title, field in panels(args.gamma):
        points = descend(field, tuple(args.start), args.lr, args.steps, args.alternating)
        end = float(np.hypot(*points[-1]))
        print(f"{title:38s} {end:20.4g}" + (f"  (left |·| < 1e6 after {len(points) - 1} steps)"
                                              if len(points) <= args.steps else ""))
        runs.append((title, field, points))
    print(f"\nthe unrolled GAN's second-order term, |(θ, ψ)| after {args.steps} steps (the minimax game):")
    print(f"{'K':>3s} {'η':>5s} {'first order':>12s} {'second order':>13s}")
    for k, eta in ((1, 0.1), (5, 0.1), (1, 0.5), (5, 0.5)):
        ends = [np.hypot(*descend(Unrolled(DiracGAN("ns", g_loss="minimax"), k, eta, order), tuple(args.start), args.lr,
                                  args.steps, args.alternating)[-1]) for order in (1, 2)]
        print(f"{k:3d} {eta:5g} {ends[0]:12.4g} {ends[1]:13.4g}")
    path = plot(args.out / "dirac_gan.png", runs, lim=args.lim, grid=args.grid, lr=args.lr, steps=args.steps,
                alternating=args.alternating)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
