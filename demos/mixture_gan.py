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
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from minigan import cli, cures, metrics, models, viz
from minigan.trainer import GANTrainer

PUBLISHED = {  # (modes, % high quality), PacGAN (Lin et al. 2018), Table 1
    "ring": [("GAN", 6.3, 98.2), ("PacGAN4", 7.8, 95.9), ("VEEGAN", 8.0, 52.9), ("Unrolled GAN", 7.6, 35.6)],
    "grid": [("GAN", 17.3, 94.8), ("PacGAN4", 24.8, 93.6), ("VEEGAN", 24.6, 40.0), ("Unrolled GAN", 23.6, 16.0)],
}


def run(name, seed, *, steps, batch, hidden, lr, beta1=0.5, structure=None, options=None, n_points=100_000):
    """Train one MLP GAN on n_points of the mixture for about `steps` steps (whole epochs);
    return (score, 2,500 samples, s/step). structure: the D-layer cures (minigan.cures.structure);
    options: the trainer's cure options."""
    import time
    points = metrics.sample_mixture(name, n_points, seed)
    G = models.mlp_generator(2, 2, hidden=hidden, depth=3, seed=seed)
    D = models.mlp_discriminator(2, hidden=hidden, depth=3, seed=seed + 1000, **(structure or {}))
    t = GANTrainer(G, D, nz=2, lr=lr, beta1=beta1, seed=seed, log=lambda *a: None, log_every=100,
                   **dict(options or {}, cures=structure or {}))
    steps_per_epoch = len(points) // batch
    start = time.perf_counter()
    status = t.fit(points, epochs=max(1, round(steps / steps_per_epoch)), batch_size=batch)
    if status != "done":  # a stopped run is not a result
        raise cli.Stopped(f"{name} seed {seed}: stopped by {t.stop_signal} at step {t.step}; not recorded",
                          t.stop_signal)
    per_step = (time.perf_counter() - start) / max(t.step, 1)
    z = np.random.default_rng([seed, 3]).standard_normal((2500, 2)).astype(np.float32)
    samples = t.sample(z)
    return metrics.mixture_score(samples, name), samples, per_step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mixtures", nargs="+", choices=["ring", "grid"], default=["ring", "grid"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=6000, help="training steps per run (default 6000)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=128, help="units per hidden layer of G and D")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--quick", action="store_true", help="one seed, 200 steps: checks the pipeline")
    p.add_argument("--out", type=Path, default=Path("runs/mixture_gan"))
    cures.add_flags(p, images=False)
    p.set_defaults(mmd_weight=1.0)  # the second arm's cure unless told otherwise
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps = 1, 200
    cli.check_numbers(p, args, at_least_1=("seeds", "steps", "batch_size", "hidden"), positive=("lr",))
    cures.check_flags(p, args)
    cured = dict(structure=cures.structure(args), options=cures.trainer_options(args))
    cured["options"].pop("cures")
    return cli.run("mixture_gan.py", compare, args, cured, cure_label(args))


def compare(args, cured, label):
    results = {}
    for name in args.mixtures:
        means, _ = metrics.mixture(name)
        for arm, tag, kw in (("GAN", "gan", {}), (f"GAN + {label}", "cured", cured)):
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
    print(f"\n{'mixture':8s} {'model':24s} {'modes':>12s} {'% high quality':>16s} {'reverse KL':>14s}")
    for name in args.mixtures:
        for (n, arm), r in results.items():
            if n == name:
                print(f"{name:8s} {arm:24s} {r['modes'][0]:6.1f} ± {r['modes'][1]:3.1f} "
                      f"{100 * r['high_quality'][0]:9.1f} ± {100 * r['high_quality'][1]:4.1f} "
                      f"{r['reverse_kl'][0]:7.3f} ± {r['reverse_kl'][1]:5.3f}")
        for label, modes, hq in PUBLISHED[name]:
            print(f"{name:8s} {label + ' (published)':24s} {modes:6.1f}       {hq:9.1f}")
    return 0


def cure_label(args):
    """The second arm's name: the cure flags whose values differ from minigan.cures' defaults."""
    base = argparse.ArgumentParser()
    cures.add_flags(base, images=False)
    defaults = vars(base.parse_args([]))
    changed = [f"{k}={v}" for k, v in vars(args).items() if k in defaults and k != "images" and v != defaults[k]]
    return ", ".join(changed) or "no cure"


if __name__ == "__main__":
    sys.exit(main())
