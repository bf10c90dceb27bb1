"""The 2-D mode-collapse benchmark of VEEGAN and PacGAN: a GAN against the same GAN with an
MMD term, on a ring of 8 and a grid of 25 Gaussians, scored on 2,500 samples per run.

    python demos/mixture_gan.py                      # both mixtures, plain and MMD, 5 seeds
    python demos/mixture_gan.py --quick --out /tmp/m  # one short run each (what the tests run)

Prints modes captured, % high-quality samples and the reverse KL of the mode histogram, as
mean ± standard deviation over seeds, and draws the samples over the true means.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from minigan import metrics, models, viz
from minigan.trainer import GANTrainer

PUBLISHED = {  # (modes, % high quality), PacGAN (Lin et al. 2018), Table 1
    "ring": [("GAN", 6.3, 98.2), ("PacGAN4", 7.8, 95.9), ("VEEGAN", 8.0, 52.9), ("Unrolled GAN", 7.6, 35.6)],
    "grid": [("GAN", 17.3, 94.8), ("PacGAN4", 24.8, 93.6), ("VEEGAN", 24.6, 40.0), ("Unrolled GAN", 23.6, 16.0)],
}


def run(name, mmd_weight, seed, *, steps, batch, hidden, lr, out=None):
    """Train one MLP GAN on 100,000 points of the mixture; return (score, 2,500 samples)."""
    points = metrics.sample_mixture(name, 100_000, seed)
    G = models.mlp_generator(2, 2, hidden=hidden, depth=3, seed=seed)
    D = models.mlp_discriminator(2, hidden=hidden, depth=3, seed=seed + 1000)
    t = GANTrainer(G, D, nz=2, lr=lr, beta1=0.5, mmd_weight=mmd_weight, seed=seed, log=lambda *a: None,
                   log_every=100)
    steps_per_epoch = len(points) // batch
    t.fit(points, epochs=max(1, round(steps / steps_per_epoch)), batch_size=batch)
    z = np.random.default_rng([seed, 3]).standard_normal((2500, 2)).astype(np.float32)
    samples = t.sample(z)
    return metrics.mixture_score(samples, name), samples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mixtures", nargs="+", choices=["ring", "grid"], default=["ring", "grid"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=6000, help="training steps per run (default 6000)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=128, help="units per hidden layer of G and D")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--mmd-weight", type=float, default=1.0, help="weight of the MMD term in the second arm")
    p.add_argument("--quick", action="store_true", help="one seed, 200 steps: checks the pipeline")
    p.add_argument("--out", type=Path, default=Path("runs/mixture_gan"))
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps = 1, 200
    results = {}
    for name in args.mixtures:
        means, _ = metrics.mixture(name)
        for arm, weight in (("GAN", 0.0), (f"GAN + MMD (w={args.mmd_weight:g})", args.mmd_weight)):
            scores, panels = [], {}
            for seed in range(args.seeds):
                score, samples = run(name, weight, seed, steps=args.steps, batch=args.batch_size,
                                     hidden=args.hidden, lr=args.lr)
                scores.append(score)
                panels[f"seed {seed}: {score['modes']} modes, {100 * score['high_quality']:.0f}% HQ"] = samples
                print(f"{name} {arm} seed {seed}: {json.dumps(score)}", flush=True)
            viz.save_samples(args.out / f"{name}_{'mmd' if weight else 'gan'}.png", panels, reference=means)
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


if __name__ == "__main__":
    sys.exit(main())
