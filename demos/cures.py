"""Every cure side by side, on the same data with the same budget: the 2-D mixtures (the
VEEGAN/PacGAN protocol of demos/mixture_gan.py) and the DCGAN on MNIST.

    python demos/cures.py 2d --out runs/cures            # ring and grid, 5 seeds, every arm
    python demos/cures.py mnist --out runs/cures --seeds 3   # the test split: --test-dir, the cache or a download
    python demos/cures.py 2d --quick --out /tmp/c         # a few steps per arm (what the tests run)

An arm is a set of the demos' cure flags (the same names as demos/mnist_gan.py; --arms picks
some by name). Writes, per mixture and arm: OUT/<ring|grid>/<arm>/seed<k>.npy (the 2,500
samples, float (2500, 2)), flags.txt, a scatter panel OUT/<ring|grid>/<arm>.png, and
OUT/table_2d.md; for MNIST: OUT/mnist/<arm>/seed<k>.json (the scores), seed<k>_samples.npy
(the 10,000 scored samples, float16, for other scorers), flags.txt, grid.png (seed 0's EMA or
plain generator on one fixed z) and OUT/table_mnist.md.

Each run's scores are kept in OUT as it ends, and a run already there is not run again: a
stopped benchmark resumes where it was, several processes can share one OUT (different
--arms), and the tables are rebuilt from every run in OUT. An arm whose flags changed is
refused until its folder is removed.
"""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from minigan import checkpoint, cli, cures, data, metrics, models, viz
from minigan.trainer import GANTrainer

ARMS_2D = {
    "gan": "", "hinge": "--loss hinge", "ls": "--loss ls", "sn": "--sn", "mbstd": "--mbstd 4",
    "mbdisc": "--mbdisc 20", "pacgan2": "--pack 2", "pacgan4": "--pack 4", "unrolled5": "--unroll 5",
    "ema": "--ema 0.999", "pixel-mmd": "--mmd-weight 1", "feature-mmd": "--mmd-weight 1 --mmd-space features",
    "feature-matching": "--feature-matching 1", "stack": "--ema 0.999 --mmd-weight 5",
    "stack-features": "--ema 0.999 --mmd-weight 1 --mmd-space features",
    "stack-fm": "--ema 0.999 --mmd-weight 1 --mmd-space features --feature-matching 1",
    "unrolled1": "--unroll 1", "unrolled1-2nd": "--unroll 1 --unroll-order 2",
    "r1": "--gp r1", "r2": "--gp r2", "wgan-gp": "--loss wgan --gp wgan-gp", "dragan": "--gp dragan",
    "madgan4": "--madgan 4", "madgan4-sim": "--madgan 4 --madgan-sim 0.1", "madgan8": "--madgan 8", "mrgan": "--mrgan",
    "mrgan-diffusion": "--mrgan --mrgan-diffusion", "ebgan": "--ebgan",
    "ema-r1": "--ema 0.999 --gp r1", "stack-r1": "--ema 0.999 --mmd-weight 1 --mmd-space features --gp r1",
}
# Left out unless named in --arms: at batch 256 minibatch discrimination's 256 × 256 × 20 × 5
# pairwise tensor makes a step ~60 times the plain one (about 70 minutes a run on 2 cores).
SLOW = {"mbdisc"}
ARMS_MNIST = {
    "plain": "", "ema": "--ema 0.999", "diffaug": "--diffaug", "sn": "--sn", "hinge": "--loss hinge",
    "mbstd": "--mbstd 4", "lecam": "--lecam 0.3", "pacgan2": "--pack 2", "pixel-mmd": "--mmd-weight 1",
    "feature-mmd": "--mmd-weight 1 --mmd-space features", "ema-lr1e-3": "--ema 0.999 --lr 1e-3",
    "stack": "--ema 0.999 --lr 1e-3 --mmd-weight 1",
    "madgan4": "--madgan 4", "mrgan": "--mrgan", "ebgan": "--ebgan", "r1": "--gp r1 --gp-every 4",
    "wgan-gp": "--loss wgan --gp wgan-gp", "dragan": "--gp dragan", "default-r1": "--ema 0.999 --lr 1e-3 --gp r1 --gp-every 4",
}


def arm_options(flags, images, batch_size):
    """The cure options of an arm, parsed and checked by the demos' own flags (so an arm is what a
    user types): (GANTrainer's keywords, the arm's --lr or None)."""
    p = argparse.ArgumentParser(prog="arm")
    p.add_argument("--lr", type=float)
    cures.add_flags(p)
    args = p.parse_args(shlex.split(flags))
    options = cures.from_args(p, args, batch_size=batch_size, shape=(1, 28, 28) if images else (2,))
    return options, args.lr


def run_2d(mixture, arm, flags, seed, steps, batch, lr, n_points):
    """(score, samples, ms per step) of one MLP GAN on the mixture."""
    from mixture_gan import run
    options, arm_lr = arm_options(flags, False, batch)
    score, samples, per_step = run(mixture, seed, steps=steps, batch=batch, hidden=128, lr=arm_lr or lr,
                                   options=options, n_points=n_points)
    return score, samples, per_step * 1e3


def run_mnist(images, test, arm, flags, seed, steps, batch, n_eval, z_grid):
    options, arm_lr = arm_options(flags, True, batch)
    G, D, networks = models.build_networks("dcgan", nz=100, seed=seed, options=options)
    t = GANTrainer(G, D, nz=100, lr=arm_lr or 2e-4, seed=seed, networks=networks, log=lambda *a: None, **options)
    epochs = max(1, round(steps / (len(images) // batch)))
    start = time.perf_counter()
    finished(t, t.fit(images, epochs=epochs, batch_size=batch), f"mnist {arm} seed {seed}")
    wall = time.perf_counter() - start
    z = np.random.default_rng([seed, 9]).standard_normal((n_eval, 100)).astype(np.float32)
    samples = t.sample(z)
    r = metrics.evaluate(samples, test)
    scores = {k: r[k] for k in ("inception_score", "fid", "fid_shift", "kid", "kl_to_uniform", "classes_present")}
    scores.update(r_t=t.history[-1]["r_t"], ms_per_step=wall / t.step * 1e3, wall_s=wall, steps=t.step)
    order, _ = t.model.grid(len(z_grid))  # MAD-GAN: its generators' samples together
    return scores, samples, t.sample(z_grid)[order]


def finished(trainer, status, label):
    """A run stopped by a signal is not a result: it is not recorded, and the benchmark stops."""
    if status != "done":
        raise cli.Stopped(f"{label}: stopped by {trainer.stop_signal} at step {trainer.step}; not recorded (the "
                          "same command resumes the benchmark from the runs already kept)", trainer.stop_signal)


def mean_sd(values):
    infinite = int(np.sum(~np.isfinite(values)))
    if infinite:  # a reverse KL with no mode captured
        return f"∞ ({infinite} of {len(values)} seeds)"
    def number(x, digits):
        return f"{x:,.0f}" if abs(x) >= 10 ** digits else f"{x:.{digits}g}"
    if len(values) == 1:
        return number(values[0], 3)
    return f"{number(np.mean(values), 3)} ± {number(np.std(values), 2)}"


def suite_2d(args):
    for mixture in args.mixtures:
        means, _ = metrics.mixture(mixture)
        for arm, flags in pick(ARMS_2D, args.arms).items():
            folder = arm_folder(args.out / mixture / arm, flags)
            for seed in range(args.seeds):
                def one_run():
                    score, samples, ms = run_2d(mixture, arm, flags, seed, args.steps, args.batch_size, 1e-3,
                                                args.steps * args.batch_size if args.quick else 100_000)
                    save_npy(folder / f"seed{seed}.npy", samples.astype(np.float64))
                    return dict(score, ms_per_step=ms)
                kept(folder / f"seed{seed}.json", f"{mixture} {arm} seed {seed}", one_run)
            runs = seeds_on_disk(folder)
            viz.save_samples(args.out / mixture / f"{arm}.png", {
                f"seed {k}: {r['modes']} modes, {100 * r['high_quality']:.0f}% HQ": np.load(folder / f"seed{k}.npy")
                for k, r in runs.items()}, reference=means)
    rows = ["| mixture | arm | flags | seeds | modes | % high quality | reverse KL | worst seed (modes / % HQ / KL) "
            "| ms/step |", "|---|---|---|---:|---:|---:|---:|---|---:|"]
    for mixture in ("ring", "grid"):
        for arm, flags in ARMS_2D.items():
            runs = list(seeds_on_disk(args.out / mixture / arm).values())
            if not runs:
                continue
            col = lambda k, scale=1: mean_sd([scale * r[k] for r in runs])  # noqa: E731
            worst = min(runs, key=lambda s: (s["modes"], s["high_quality"]))
            rows.append(f"| {mixture} | {arm} | `{flags or '(none)'}` | {len(runs)} | {col('modes')} | "
                        f"{col('high_quality', 100)} | {col('reverse_kl')} | {worst['modes']} / "
                        f"{100 * worst['high_quality']:.1f} / {worst['reverse_kl']:.3f} | "
                        f"{np.mean([r['ms_per_step'] for r in runs]):.1f} |")
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
    for arm, flags in pick(ARMS_MNIST, args.arms).items():
        folder = arm_folder(args.out / "mnist" / arm, flags)
        for seed in range(args.seeds):
            def one_run():
                scores, samples, grid = run_mnist(images, test, arm, flags, seed, args.steps, args.batch_size,
                                                  args.n_eval, z_grid)
                save_npy(folder / f"seed{seed}_samples.npy", samples.astype(np.float16))  # for other scorers
                if seed == 0:
                    viz.save_samples(folder / "grid.png", {f"{arm}, seed 0 (fixed z)": grid})
                return scores
            kept(folder / f"seed{seed}.json", f"mnist {arm} seed {seed}", one_run)
    rows = ["| arm | flags | seeds | IS | FID | FID (2nd extractor) | KID | KL to uniform | classes | r_t | "
            "ms/step | wall s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for arm, flags in ARMS_MNIST.items():
        runs = list(seeds_on_disk(args.out / "mnist" / arm).values())
        if not runs:
            continue
        col = lambda k, scale=1: mean_sd([scale * r[k] for r in runs])  # noqa: E731
        rows.append(f"| {arm} | `{flags or '(none)'}` | {len(runs)} | {col('inception_score')} | {col('fid')} | "
                    f"{col('fid_shift')} | "
                    f"{col('kid')} | {col('kl_to_uniform')} | {col('classes_present')} | {col('r_t')} | "
                    f"{col('ms_per_step')} | {col('wall_s')} |")
    real = metrics.evaluate(images, test)
    rows.append(f"| real digits (the training images vs the test split) | | | {mean_sd([real['inception_score']])} | "
                f"{mean_sd([real['fid']])} | {mean_sd([real['fid_shift']])} | {mean_sd([real['kid']])} | {real['kl_to_uniform']:.2g} | "
                f"{real['classes_present']} | | | |")
    write_table(args.out / "table_mnist.md", rows)


def arm_folder(folder, flags):
    """OUT/.../<arm>, holding the arm's flags.txt; results made with other flags are refused."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / "flags.txt"
    if saved.is_file() and saved.read_text().strip() != flags:
        raise cli.UserError(f"{folder}: its runs were made with flags {saved.read_text().strip()!r}, this arm "
                            f"is now {flags!r}; remove the folder or choose another --out")
    saved.write_text(flags + "\n")
    return folder


def kept(path, label, one_run):
    """The scores of one run, from `path` when an earlier invocation left them there (so a
    benchmark can be stopped, resumed and spread over processes), else run and written atomically."""
    if path.is_file():
        print(f"{label}: kept from {path}", flush=True)
        return json.loads(path.read_text())
    scores = one_run()
    with checkpoint.atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(scores, indent=1))
    print(f"{label}: {json.dumps(scores)}", flush=True)
    return scores


def seeds_on_disk(folder):
    """{seed: scores} of the runs saved in an arm's folder, in seed order."""
    found = {int(p.stem[4:]): json.loads(p.read_text()) for p in folder.glob("seed*.json") if p.stem[4:].isdigit()}
    return dict(sorted(found.items()))


def save_npy(path, array):
    with checkpoint.atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def pick(arms, names):
    if not names:
        return {name: flags for name, flags in arms.items() if name not in SLOW}
    unknown = [n for n in names if n not in arms]
    if unknown:
        raise cli.UserError(f"--arms: unknown {', '.join(unknown)}; expected some of {', '.join(arms)}")
    return {n: arms[n] for n in names}


def write_table(path, rows):
    path.write_text("\n".join(rows) + "\n")
    print("\n".join(rows) + f"\n\nwrote {path}")


def main(argv=None):
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("suite", choices=["2d", "mnist"])
    p.add_argument("--arms", nargs="+", help=f"run only these arms (default: all but {', '.join(sorted(SLOW))})")
    p.add_argument("--mixtures", nargs="+", choices=["ring", "grid"], default=["ring", "grid"],
                   help="the 2-D suite's mixtures")
    p.add_argument("--seeds", type=int, default=5, help="seeds per arm")
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
