"""The 2-D mode-collapse benchmark of VEEGAN and PacGAN: a GAN against the same GAN with cures
(by default an MMD term), on a ring of 8 and a grid of 25 Gaussians, scored on 2,500 samples per run.

    python demos/mixture_gan.py                      # both mixtures, plain and MMD, 5 seeds
    python demos/mixture_gan.py --mmd-weight 0 --pack 4 --mixtures grid   # plain against PacGAN4
    python demos/mixture_gan.py --quick --out /tmp/m  # one short run each (what the tests run)

The cure flags are those of demos/mnist_gan.py (--help lists them); they apply to the second
arm. demos/cures.py runs every cure side by side.

Prints modes captured, % high-quality samples and the reverse KL of the mode histogram, as
mean ± standard deviation over seeds, and draws the samples over the true means.
"""
import json
import sys
from pathlib import Path

import numpy as np

from minigan import cli, cures, metrics, models, viz
from minigan.trainer import GANTrainer

STEPS, QUICK = 5850, 200
PUBLISHED = {  # (modes, % high quality), PacGAN (Lin et al. 2018), Table 1
    "ring": [("GAN", 6.3, 98.2), ("PacGAN4", 7.8, 95.9), ("VEEGAN", 8.0, 52.9), ("Unrolled GAN", 7.6, 35.6)],
    "grid": [("GAN", 17.3, 94.8), ("PacGAN4", 24.8, 93.6), ("VEEGAN", 24.6, 40.0), ("Unrolled GAN", 23.6, 16.0)],
}


def run(name, seed, *, steps, batch, hidden, lr, beta1=0.5, options=None, feature_layer=None, n_points=100_000):
    """Train one MLP GAN on n_points of the mixture for `steps` steps; return (score, 2,500
    samples, s/step). options: the cures' (GANTrainer's keywords)."""
    import time
    points = metrics.sample_mixture(name, n_points, seed)
    G, D, networks = models.build_networks("mlp", nz=2, seed=seed, hidden=hidden, options=options)
    t = GANTrainer(G, D, nz=2, lr=lr, beta1=beta1, seed=seed, networks=networks, feature_layer=feature_layer,
                   log=lambda *a: None, log_every=100, **(options or {}))
    start = time.perf_counter()
    status = t.fit(points, steps=steps, batch_size=batch)
    if status != "done":  # a stopped run is not a result
        raise cli.Stopped(f"{name} seed {seed}: stopped by {t.stop_signal} at step {t.step}; not recorded",
                          t.stop_signal)
    per_step = (time.perf_counter() - start) / max(t.step, 1)
    z = np.random.default_rng([seed, 3]).standard_normal((2500, 2)).astype(np.float32)
    samples = t.sample(z)
    return metrics.mixture_score(samples, name), samples, per_step


def main(argv=None):
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("--mixtures", nargs="+", choices=["ring", "grid"], default=["ring", "grid"],
                   help="which mixtures: the ring of 8 Gaussians, the grid of 25")
    p.add_argument("--seeds", type=int, default=5, help="seeds per arm")
    p.add_argument("--steps", type=int, default=STEPS, help="training steps per run (15 passes over the 100,000 "
                   "points at batch 256)")
    p.add_argument("--batch-size", type=int, default=256, help="samples per step")
    p.add_argument("--hidden", type=int, default=128, help="units per hidden layer of G and D")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate for G and D")
    p.add_argument("--quick", action="store_true", help=f"one seed, {QUICK} steps: checks the pipeline")
    p.add_argument("--out", type=Path, default=Path("runs/mixture_gan"), help="where the scatter plots go")
    cures.add_flags(p)
    p.set_defaults(mmd_weight=1.0)  # the second arm's cure unless told otherwise
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps = 1, QUICK
    cli.check_numbers(p, args, at_least_1=("seeds", "steps", "batch_size", "hidden"), positive=("lr",))
    options = cures.from_args(p, args, batch_size=args.batch_size, shape=(2,))
    return cli.run("mixture_gan.py", compare, args, options, cure_label(options))


def compare(args, cured, label):
    """Each mixture: the plain GAN, then the GAN with the cures of `cured` (GANTrainer's keywords)."""
    results = {}
    for name in args.mixtures:
        means, _ = metrics.mixture(name)
        for arm, tag, kw in (("GAN", "gan", {}),
                             (f"GAN + {label}", "cured", {"options": cured, "feature_layer": args.feature_layer})):
            scores, panels = [], {}
            for seed in range(args.seeds):
                score, samples, _ = run(name, seed, steps=args.steps, batch=args.batch_size,
                                        hidden=args.hidden, lr=args.lr, **kw)
                scores.append(score)
                panels[f"seed {seed}: {score['modes']} modes, {100 * score['high_quality']:.0f}% HQ"] = samples
                print(f"{name} {arm} seed {seed}: {json.dumps(score)}", flush=True)
            viz.save_samples(args.out / f"{name}_{tag}.png", panels, reference=means)
            results[(name, arm)] = {k: (float(np.mean([s[k] for s in scores])), float(np.std([s[k] for s in scores])))
                                    for k in scores[0]}
    print(f"\nthis run: {args.steps:,} steps of batch {args.batch_size}, {args.seeds} seed(s) per arm"
          + ("" if args.steps >= STEPS else f" — shorter than the {STEPS:,}-step benchmark, so not comparable with "
             "the rows below it") + "; the published rows are PacGAN's Table 1 (Lin et al. 2018)")
    print(f"{'mixture':8s} {'model':24s} {'modes':>12s} {'% high quality':>16s} {'reverse KL':>14s}")
    for name in args.mixtures:
        for (n, arm), r in results.items():
            if n == name:
                print(f"{name:8s} {arm:24s} {r['modes'][0]:6.1f} ± {r['modes'][1]:3.1f} "
                      f"{100 * r['high_quality'][0]:9.1f} ± {100 * r['high_quality'][1]:4.1f} "
                      f"{r['reverse_kl'][0]:7.3f} ± {r['reverse_kl'][1]:5.3f}")
        for label, modes, hq in PUBLISHED[name]:
            print(f"{name:8s} {label + ' (published)':24s} {modes:6.1f}       {hq:9.1f}")
    return 0


def cure_label(options):
    """The second arm's name: the cure options that differ from their defaults."""
    defaults = {key: o.default for key, o in cures.options().items()}
    return ", ".join(f"{k}={v}" for k, v in options.items() if v != defaults[k]) or "no cure"


if __name__ == "__main__":
    sys.exit(main())
