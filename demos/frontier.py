"""Recipes compared at a fixed wall-clock budget: the best digits N minutes of training can draw.

    python demos/frontier.py --test-dir DIR --out runs/frontier            # every recipe, 10 minutes, seed 0
    python demos/frontier.py --test-dir DIR --recipes half --seeds 3       # three seeds of one recipe
    python demos/frontier.py --quick --out /tmp/f                          # seconds per recipe (what tests run)

demos/cures.py compares cures at a fixed number of steps; this compares recipes at a fixed
number of training minutes on this machine, so a recipe that trains faster per step gets more
steps. A recipe is a line of demos/mnist_gan.py's flags (the network's --width, --batch-size,
--lr, --ema, the cures), exactly as a user would type them. Each run trains for --minutes of
training time (scoring pauses the clock) and is scored at each quarter of it: 10,000 samples
of a fixed z (the EMA generator where the recipe keeps one) against the test split, under both
of minigan's extractors (metrics.evaluate: FID, second-extractor FID, IS, KL of the class
histogram to uniform).

Writes OUT/<recipe>/seed<k>.json (the scores at each point, the steps reached), flags.txt,
grid.png (seed 0's last generator on one fixed z), OUT/table.md and OUT/frontier.png (FID
against training minutes, one line per recipe: the mean over the seeds run). A run already in
OUT is not run again (a stopped benchmark resumes; see demos/cures.py). The minutes depend on
the machine: the table prints what this one is.
"""
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # mnist_gan's flags, cures' bookkeeping
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the machine's description
import mnist_gan  # noqa: E402
from common import machine  # noqa: E402
from cures import arm_folder, kept, mean_sd, pick, write_table  # noqa: E402

from minigan import cli, data, metrics, viz  # noqa: E402

RECIPES = {  # name -> demos/mnist_gan.py flags, width, rate and batch spelled out (the default run took them from here)
    "plain": "--plain",
    "full": "--width 1 --lr 1e-3 --batch-size 64",
    "three-quarter": "--width 0.75 --lr 1e-3 --batch-size 64",
    "half": "--width 0.5 --lr 1e-3 --batch-size 64",
    "half-b32": "--width 0.5 --lr 1e-3 --batch-size 32",
    "half-diffaug": "--width 0.5 --lr 1e-3 --batch-size 64 --diffaug translation",
    "half-decay": "--width 0.5 --lr 1e-3 --batch-size 64 --lr-decay 4000",
    "half-lr2e-3": "--width 0.5 --lr 2e-3 --batch-size 64",
    "half-lr3e-3": "--width 0.5 --lr 3e-3 --batch-size 64",
    "quarter-lr2e-3": "--width 0.25 --lr 2e-3 --batch-size 64",
    "half-b128-lr3e-3": "--width 0.5 --lr 3e-3 --batch-size 128",
}
POINTS = 4  # scored at each quarter of the budget


class Budget:
    """A Trainer callback that ends fit() once the training time reaches `until` seconds; the
    clock counts only inside fit (scoring between the calls is not training time)."""

    def __init__(self):
        self.spent, self.until, self.started = 0.0, 0.0, None

    def step_context(self, trainer):
        if self.started is None:
            self.started = time.perf_counter()
        return None

    def after_step(self, trainer):
        if self.spent + time.perf_counter() - self.started >= self.until:
            trainer.request_stop("time budget")

    def pause(self):
        self.spent += time.perf_counter() - self.started
        self.started = None


def run(flags, seed, seconds, images, test, n_eval, z_grid):
    """[{minutes, steps, scores...} at each quarter of `seconds`], and the last grid."""
    args = mnist_gan.parse_args(shlex.split(flags) + ["--seed", str(seed)])
    args.out = None  # the trainer the demo builds for these flags, writing nothing: scored here
    t = mnist_gan.build_trainer(args)
    budget = Budget()
    t.callbacks.append(budget)
    t.log = lambda *a: None
    batch = min(args.batch_size, len(images))
    z = np.random.default_rng([seed, 9]).standard_normal((n_eval, args.nz)).astype(np.float32)
    points = []
    for k in range(1, POINTS + 1):
        budget.until = seconds * k / POINTS
        t.fit(images, batch_size=batch, epochs=math.inf)  # ends by the budget (or a signal)
        budget.pause()
        if t.stop_signal != "time budget":
            raise cli.Stopped(f"stopped by {t.stop_signal} at step {t.step}; not recorded", t.stop_signal)
        r = metrics.evaluate(t.sample(z), test)
        points.append(dict(minutes=budget.spent / 60, steps=t.step, **{
            key: r[key] for key in ("fid", "fid_shift", "inception_score", "kl_to_uniform", "classes_present")}))
        print(f"  {points[-1]['minutes']:.2f} min, {t.step} steps: FID {r['fid']:.1f}, 2nd {r['fid_shift']:.1f}, "
              f"IS {r['inception_score']:.2f}, KL {r['kl_to_uniform']:.4f}", flush=True)
    return points, t.sample(z_grid)


def main(argv=None):
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("--recipes", nargs="+", help=f"run only these (default: all of {', '.join(RECIPES)})")
    p.add_argument("--seeds", type=int, default=1, help="seeds per recipe (0 … N−1). Default: 1")
    p.add_argument("--minutes", type=float, default=10.0, help="training minutes per run. Default: 10")
    p.add_argument("--n-eval", type=int, default=10_000, help="samples scored at each point. Default: 10,000")
    p.add_argument("--data-dir", type=Path, help="the MNIST training split (default: the loader's search)")
    p.add_argument("--test-dir", type=Path, help="the MNIST test split (default: the loader's search)")
    p.add_argument("--quick", action="store_true", help="tiny data, a second per recipe: checks the pipeline")
    p.add_argument("--out", type=Path, default=Path("runs/frontier"))
    args = p.parse_args(argv)
    cli.check_numbers(p, args, at_least_1=("seeds", "n_eval"), positive=("minutes",))
    recipes = pick(RECIPES, args.recipes)
    return cli.run("frontier.py", suite, args, recipes)


def suite(args, recipes):
    if args.quick:
        rng = np.random.default_rng(0)
        images = np.tanh(rng.standard_normal((64, 1, 28, 28))).astype(np.float32)
        test, source, seconds, args.n_eval = images[:32], "synthetic noise (--quick)", 1.0, 64
    else:
        images = data.to_float(data.load_mnist("train", data_dir=args.data_dir)[0])
        test = data.to_float(data.load_mnist("test", data_dir=args.test_dir)[0])
        source, seconds = f"{len(images):,} training images", args.minutes * 60
    print(f"data: {source}; {seconds / 60:g} training minutes per run, scored at each quarter on "
          f"{args.n_eval:,} samples", flush=True)
    z_grid = np.random.default_rng(1234).standard_normal((64, 100)).astype(np.float32)
    for name, flags in recipes.items():
        folder = arm_folder(args.out / name, flags)
        for seed in range(args.seeds):
            def one_run():
                print(f"{name} seed {seed}: {flags or '(the default)'}", flush=True)
                points, grid = run(flags, seed, seconds, images, test, args.n_eval, z_grid)
                if seed == 0:
                    viz.save_samples(folder / "grid.png", {f"{name}, seed 0, after {points[-1]['minutes']:.1f} "
                                                           f"training minutes": grid})
                return dict(points=points, seconds=seconds)
            kept(folder / f"seed{seed}.json", f"{name} seed {seed}", one_run)
    report(args.out, seconds)


def report(out, seconds):
    """OUT/table.md and OUT/frontier.png from every run in OUT made with this budget."""
    import json
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [f"Training budget {seconds / 60:g} minutes; {machine()}", "",
            "| recipe | flags | seeds | steps | ms/step | FID | FID (2nd extractor) | IS | KL to uniform | classes |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, flags in RECIPES.items():
        runs = [json.loads(f.read_text()) for f in sorted((out / name).glob("seed*.json"))]
        runs = [r for r in runs if r["seconds"] == seconds]
        if not runs:
            continue
        last = [r["points"][-1] for r in runs]
        col = lambda k: mean_sd([p[k] for p in last])  # noqa: E731
        ms = np.mean([p["minutes"] * 6e4 / p["steps"] for p in last])
        rows.append(f"| {name} | `{flags or '(default)'}` | {len(runs)} | {col('steps')} | {ms:.0f} | {col('fid')} | "
                    f"{col('fid_shift')} | {col('inception_score')} | {col('kl_to_uniform')} | "
                    f"{col('classes_present')} |")
        minutes = np.mean([[p["minutes"] for p in r["points"]] for r in runs], axis=0)
        ax.plot(minutes, np.mean([[p["fid"] for p in r["points"]] for r in runs], axis=0), "o-",
                label=f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
    ax.set(xlabel="training minutes", ylabel="FID (minigan's classifier, 10,000 samples)",
           title="Recipes at a fixed wall-clock budget")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "frontier.png", dpi=100)
    plt.close(fig)
    write_table(out / "table.md", rows)


if __name__ == "__main__":
    sys.exit(main())
