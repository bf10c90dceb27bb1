"""Every cure side by side, on the same data with the same budget: the 2-D mixtures (the
VEEGAN/PacGAN protocol of demos/mixture_gan.py) and the DCGAN on MNIST.

    python demos/cures.py 2d --out runs/cures            # ring and grid, 5 seeds, every arm
    python demos/cures.py mnist --out runs/cures --seeds 3 --test-dir ../shared/data/mnist
    python demos/cures.py 2d --quick --out /tmp/c         # a few steps per arm (what the tests run)

An arm is a set of the demos' cure flags (the same names as demos/mnist_gan.py; --arms picks
some by name). Writes, per mixture and arm: OUT/<ring|grid>/<arm>/seed<k>.npy (the 2,500
samples, float (2500, 2)), flags.txt, a scatter panel OUT/<ring|grid>/<arm>.png, and
OUT/table_2d.md; for MNIST: OUT/mnist/<arm>/seed<k>.json (the scores), flags.txt, grid.png
(seed 0's EMA or plain generator on one fixed z) and OUT/table_mnist.md.
"""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from minigan import cli, cures, data, metrics, models, viz
from minigan.trainer import GANTrainer

ARMS_2D = {
    "gan": "", "hinge": "--loss hinge", "ls": "--loss ls", "sn": "--sn", "mbstd": "--mbstd 4",
    "mbdisc": "--mbdisc 20", "pacgan2": "--pack 2", "pacgan4": "--pack 4", "unrolled5": "--unroll 5",
    "ema": "--ema 0.999", "pixel-mmd": "--mmd-weight 1", "feature-mmd": "--mmd-weight 1 --mmd-space features",
    "feature-matching": "--feature-matching 1", "stack": "--pack 4 --mmd-weight 5 --ema 0.999",
}
ARMS_MNIST = {
    "plain": "", "ema": "--ema 0.999", "diffaug": "--diffaug", "sn": "--sn", "hinge": "--loss hinge",
    "mbstd": "--mbstd 4", "lecam": "--lecam 0.3", "pacgan2": "--pack 2", "pixel-mmd": "--mmd-weight 1",
    "feature-mmd": "--mmd-weight 1 --mmd-space features", "ema-lr1e-3": "--ema 0.999 --lr 1e-3",
    "stack": "--ema 0.999 --lr 1e-3 --mmd-weight 1",
}


def arm_args(flags, images, batch_size):
    """The cure flags of an arm, parsed by the demos' own parser (so an arm is what a user types)."""
    p = argparse.ArgumentParser(prog="arm")
    p.add_argument("--lr", type=float)
    cures.add_flags(p, images=images)
    args = p.parse_args(shlex.split(flags))
    args.batch_size = batch_size
    cures.check_flags(p, args)
    return args


def run_2d(mixture, arm, flags, seed, steps, batch, lr, n_points):
    """(score, samples, ms per step) of one MLP GAN on the mixture."""
    from mixture_gan import run
    args = arm_args(flags, False, batch)
    options = cures.trainer_options(args)
    structure = options.pop("cures")
    score, samples, per_step = run(mixture, seed, steps=steps, batch=batch, hidden=128, lr=args.lr or lr,
                                   structure=structure, options=options, n_points=n_points)
    return score, samples, per_step * 1e3


def run_mnist(images, test, arm, flags, seed, steps, batch, n_eval, z_grid):
    args = arm_args(flags, True, batch)
    G, D = models.dcgan_generator(100, seed=seed), models.dcgan_discriminator(seed=seed + 1, **cures.structure(args))
    t = GANTrainer(G, D, nz=100, lr=args.lr or 2e-4, seed=seed, log=lambda *a: None, **cures.trainer_options(args))
    epochs = max(1, round(steps / (len(images) // batch)))
    start = time.perf_counter()
    t.fit(images, epochs=epochs, batch_size=batch)
    wall = time.perf_counter() - start
    z = np.random.default_rng([seed, 9]).standard_normal((n_eval, 100)).astype(np.float32)
    r = metrics.evaluate(t.sample(z), test)
    scores = {k: r[k] for k in ("inception_score", "fid", "kid", "kl_to_uniform", "classes_present")}
    scores.update(r_t=t.history[-1]["r_t"], ms_per_step=wall / t.step * 1e3, wall_s=wall, steps=t.step)
    return scores, t.sample(z_grid)


def mean_sd(values):
    return f"{np.mean(values):.3g} ± {np.std(values):.2g}"


def suite_2d(args):
    rows = ["| mixture | arm | flags | modes | % high quality | reverse KL | worst seed (modes / % HQ / KL) | ms/step |",
            "|---|---|---|---:|---:|---:|---|---:|"]
    for mixture in args.mixtures:
        means, _ = metrics.mixture(mixture)
        for arm, flags in pick(ARMS_2D, args.arms).items():
            folder = args.out / mixture / arm
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "flags.txt").write_text(flags + "\n")
            scores, panels, ms = [], {}, []
            for seed in range(args.seeds):
                score, samples, per_step = run_2d(mixture, arm, flags, seed, args.steps, args.batch_size, 1e-3,
                                                  args.steps * args.batch_size if args.quick else 100_000)
                np.save(folder / f"seed{seed}.npy", samples.astype(np.float64))
                scores.append(score)
                ms.append(per_step)
                panels[f"seed {seed}: {score['modes']} modes, {100 * score['high_quality']:.0f}% HQ"] = samples
                print(f"{mixture} {arm} seed {seed}: {json.dumps(score)}", flush=True)
            viz.save_samples(args.out / mixture / f"{arm}.png", panels, reference=means)
            worst = min(scores, key=lambda s: (s["modes"], s["high_quality"]))
            rows.append(f"| {mixture} | {arm} | `{flags or '(none)'}` | {mean_sd([s['modes'] for s in scores])} | "
                        f"{mean_sd([100 * s['high_quality'] for s in scores])} | "
                        f"{mean_sd([s['reverse_kl'] for s in scores])} | {worst['modes']} / "
                        f"{100 * worst['high_quality']:.1f} / {worst['reverse_kl']:.3f} | {np.mean(ms):.1f} |")
    write_table(args.out / "table_2d.md", rows)


def suite_mnist(args):
    if args.quick:
        rng = np.random.default_rng(0)
        images = np.tanh(rng.standard_normal((32, 1, 28, 28))).astype(np.float32)
        test, source = images[:16], "synthetic noise (--quick)"
    else:
        u8, _, source = data.load_mnist("train", data_dir=args.data_dir)
        images = data.to_float(u8)
        test = data.to_float(data.load_mnist("test", data_dir=args.test_dir)[0])
    print(f"data: {source}; {args.steps} steps per arm, batch {args.batch_size}, {args.n_eval:,} samples scored")
    z_grid = np.random.default_rng(1234).standard_normal((64, 100)).astype(np.float32)
    rows = ["| arm | flags | IS | FID | KID | KL to uniform | classes | r_t | ms/step | wall s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for arm, flags in pick(ARMS_MNIST, args.arms).items():
        folder = args.out / "mnist" / arm
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "flags.txt").write_text(flags + "\n")
        runs = []
        for seed in range(args.seeds):
            scores, grid = run_mnist(images, test, arm, flags, seed, args.steps, args.batch_size, args.n_eval, z_grid)
            (folder / f"seed{seed}.json").write_text(json.dumps(scores, indent=1))
            if seed == 0:
                viz.save_samples(folder / "grid.png", {f"{arm}, seed 0": grid})
            runs.append(scores)
            print(f"mnist {arm} seed {seed}: {json.dumps(scores)}", flush=True)
        col = lambda k: mean_sd([r[k] for r in runs])  # noqa: E731
        rows.append(f"| {arm} | `{flags or '(none)'}` | {col('inception_score')} | {col('fid')} | {col('kid')} | "
                    f"{col('kl_to_uniform')} | {col('classes_present')} | {col('r_t')} | {col('ms_per_step')} | "
                    f"{col('wall_s')} |")
    write_table(args.out / "table_mnist.md", rows)


def pick(arms, names):
    if not names:
        return arms
    unknown = [n for n in names if n not in arms]
    if unknown:
        raise cli.UserError(f"--arms: unknown {', '.join(unknown)}; expected some of {', '.join(arms)}")
    return {n: arms[n] for n in names}


def write_table(path, rows):
    path.write_text("\n".join(rows) + "\n")
    print("\n".join(rows) + f"\n\nwrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", choices=["2d", "mnist"])
    p.add_argument("--arms", nargs="+", help="run only these arms (default: all)")
    p.add_argument("--mixtures", nargs="+", choices=["ring", "grid"], default=["ring", "grid"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, help="training steps per run (default: 5,850 for 2d, 1,200 for mnist)")
    p.add_argument("--batch-size", type=int, help="default: 256 for 2d, 64 for mnist")
    p.add_argument("--n-eval", type=int, default=10_000, help="MNIST samples scored per run. Default: 10,000")
    p.add_argument("--data-dir", type=Path, help="the MNIST training split (default: the loader's search)")
    p.add_argument("--test-dir", type=Path, help="the MNIST test split (default: the loader's search)")
    p.add_argument("--quick", action="store_true", help="one seed, a few steps, tiny data: checks the pipeline")
    p.add_argument("--out", type=Path, default=Path("runs/cures"))
    args = p.parse_args(argv)
    mnist = args.suite == "mnist"
    args.steps = args.steps or (1200 if mnist else 5850)
    args.batch_size = args.batch_size or (64 if mnist else 256)
    if args.quick:  # every arm, a few steps, one seed (and the ring alone)
        args.seeds, args.steps, args.n_eval = 1, (2 if mnist else 20), 64
        args.batch_size, args.mixtures = (8 if mnist else 64), ["ring"]
    cli.check_numbers(p, args, at_least_1=("seeds", "steps", "batch_size", "n_eval"))
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out}: expected a folder, found a file")
    return cli.run("cures.py", suite_mnist if mnist else suite_2d, args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # for mixture_gan.run
    sys.exit(main())
