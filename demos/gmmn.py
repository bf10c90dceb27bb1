"""GMMN: a generator trained by MMD² alone, no discriminator (Li, Swersky & Zemel 2015), with
batches of 1,000 and more: on MNIST's pixels, on the code of an undercomplete autoencoder
(GMMN+AE: the autoencoder from demos/autoencoder.py, then a generator of its codes, decoded),
and on the 2-D mixtures.

    python demos/gmmn.py --data mnist                 # pixels
    python demos/gmmn.py --data mnist --space code    # GMMN+AE
    python demos/gmmn.py --data ring          # or grid
    python demos/gmmn.py --sample runs/gmmn/mnist-pixels/checkpoints/ckpt-e030-s0000150.npz --npy
    python demos/gmmn.py --quick --out /tmp/gmmn                                         # tests

Loss: MMD²(G(z), x) with the exact kernel (minigan.kernels.mmd2, biased), a sum of Gaussians
whose bandwidths are fixed at the start from the data (the median heuristic times
--sigma-factors). Each epoch ends with a checkpoint (atomic); --resume continues from the
newest one in --out; a non-finite MMD² stops the run and keeps the last good checkpoint;
Ctrl-C or SIGTERM saves first. At the end (and with --sample) the samples are scored like
the GANs': classifier FID (two extractors), IS and the class histogram on MNIST against the
test split; modes, high-quality share and reverse KL on the mixtures.
"""
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoencoder import train as train_autoencoder  # noqa: E402

from minigan import checkpoint, cli, data, metrics, models, viz  # noqa: E402
from minigan.kernels import default_sigmas, mmd2  # noqa: E402
from minigan.optim import Adam  # noqa: E402
from minigan.trainer import TrainingDiverged  # noqa: E402

FACTORS = {"mnist": (0.25, 0.5, 1.0, 2.0, 4.0), "2d": (0.005, 0.01, 0.03, 0.1, 0.3, 1.0)}


def main(argv=None):
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("--data", choices=["mnist", "ring", "grid"], default="mnist",
                   help="what G learns: MNIST, or a 2-D mixture of Gaussians (8 on a ring, 25 on a grid)")
    p.add_argument("--space", choices=["pixels", "code"], default="pixels",
                   help="mnist: match pixels, or the codes of an autoencoder (GMMN+AE)")
    p.add_argument("--epochs", type=int, default=30, help="passes over the training data")
    p.add_argument("--batch-size", type=int, default=1000,
                   help="samples in each MMD² (GMMN needs large batches: Li et al. 2015 use 1,000)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--nz", type=int, default=16, help="size of G's input z")
    p.add_argument("--hidden", type=int, default=512, help="units in each of the generator MLP's hidden layers")
    p.add_argument("--code", type=int, default=16, help="GMMN+AE: the autoencoder's code size")
    p.add_argument("--ae-epochs", type=int, default=20, help="GMMN+AE: the autoencoder's training epochs")
    p.add_argument("--sigma-factors", type=float, nargs="+",
                   help="bandwidths as multiples of the median-heuristic σ. Default: 0.25 .. 4 (MNIST), "
                        "0.005 .. 1 (2-D: the modes are 100 times narrower than the median distance)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the batches and the scored samples")
    p.add_argument("--data-dir", type=Path, help="the MNIST training split (default: the loader's search)")
    p.add_argument("--test-dir", type=Path, help="the test split to score against (MNIST)")
    p.add_argument("--n-score", type=int, help="samples scored at the end and by --sample. Default: 10,000 "
                                               "(MNIST), 2,500 (2-D: the GANs' protocol)")
    p.add_argument("--out", type=Path, help="default: runs/gmmn/<data>-<space> for MNIST, runs/gmmn/<data> for ring and grid")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--sample", metavar="CKPT", type=Path, help="sample and score a checkpoint, then exit")
    p.add_argument("--npy", action="store_true", help="with --sample: write the samples to --out/samples.npy")
    p.add_argument("--quick", action="store_true", help="synthetic data, two epochs: checks the pipeline")
    args = p.parse_args(argv)
    cli.check_numbers(p, args, at_least_1=("epochs", "batch_size", "nz", "hidden", "code", "ae_epochs", "n_score"),
                      at_least_0=("seed",), positive=("lr",))
    if args.sigma_factors and not all(f > 0 for f in args.sigma_factors):
        p.error(f"--sigma-factors: expected numbers > 0, got {' '.join(map(str, args.sigma_factors))}")
    if args.space == "code" and args.data != "mnist":
        p.error(f"--space code goes with --data mnist, got --data {args.data}")
    if args.sample is not None and not args.sample.is_file():
        p.error(f"--sample: no checkpoint file {args.sample}")
    if args.npy and args.sample is None:
        p.error("--npy goes with --sample CKPT")
    args.out = args.out or Path("runs/gmmn") / (args.data + ("" if args.data != "mnist" else f"-{args.space}"))
    return cli.run("gmmn.py", sample_only if args.sample else train, args)


# ---- data and models ----------------------------------------------------------------------------
def load(args):
    """(training targets X (N, D) float32, what a sample is made from: None or the autoencoder)."""
    if args.quick:
        rng = np.random.default_rng(0)
        if args.data != "mnist":
            return metrics.sample_mixture(args.data, 1000, 0), None
        images = np.tanh(rng.standard_normal((256, 1, 28, 28))).astype(np.float32)
    elif args.data != "mnist":
        return metrics.sample_mixture(args.data, 100000, args.seed), None  # the GANs' protocol
    else:
        images, _, source = data.load_mnist("train", data_dir=args.data_dir)
        print(f"training on {source}")
        images = data.to_float(images)
    if args.space == "pixels":
        return images.reshape(len(images), -1), None
    ae = models.autoencoder(args.code, seed=args.seed)
    x01 = (images + 1) / 2  # the autoencoder's range
    start = time.perf_counter()
    mse, _ = train_autoencoder(ae, x01, x01[:500], epochs=1 if args.quick else args.ae_epochs, batch=64, lr=1e-3,
                               seed=args.seed)
    print(f"autoencoder: code {args.code}, MSE {mse:.4f} on training images ({time.perf_counter() - start:.0f} s)")
    return encode(ae, x01), ae


def encode(ae, x01, batch=1000):
    out = []
    for i in range(0, len(x01), batch):
        h = x01[i:i + batch]
        for layer in ae.layers[:4]:  # Flatten, Dense, ReLU, Dense: models.autoencoder's encoder
            h = layer.forward(h, training=False)
        out.append(h)
    return np.concatenate(out)


def generate(G, ae, z, batch=1000):
    """Samples for z: points, images in [-1, 1], or decoded codes (GMMN+AE)."""
    out = []
    for i in range(0, len(z), batch):
        h = G.forward(z[i:i + batch], training=False)
        if ae is not None:
            for layer in ae.layers[4:]:  # the decoder, to [0, 1] images
                h = layer.forward(h, training=False)
            h = h * 2 - 1
        out.append(h)
    return np.concatenate(out)


def generator(config, width):
    image = config["data"] == "mnist" and config["space"] == "pixels"
    return models.mlp_generator(config["nz"], width, hidden=config["hidden"], depth=3, tanh=image,
                                out_shape=(1, 28, 28) if image else None, seed=config["seed"])


# ---- the loop: a checkpoint per epoch, resume, a NaN stop, Ctrl-C saves ------------------------
def train(args):
    test = None
    if args.test_dir is not None and args.data == "mnist" and not args.quick:
        test = test_split(args)  # a --test-dir that does not hold the test split is refused before training
    X, ae = load(args)
    folder = args.out / "checkpoints"
    config = dict(kind="gmmn", data=args.data, space=args.space, nz=args.nz, hidden=args.hidden, code=args.code,
                  lr=args.lr, seed=args.seed, width=int(X.shape[1]))
    G = generator(config, X.shape[1])
    opt = Adam(G, lr=args.lr)
    factors = args.sigma_factors or FACTORS["mnist" if args.data == "mnist" else "2d"]
    median = default_sigmas(X[:2000], factors=(1.0,))[0]
    sigmas = [median * f for f in factors]
    run = dict(epoch=0, step_in_epoch=0, step=0, rng_state=None, history=[])
    last = checkpoint.newest_loadable(folder) if args.resume and folder.is_dir() else None
    if args.resume and last is None:
        raise cli.UserError(f"--resume: no checkpoint in {folder}")
    if last is not None:
        arrays, meta = checkpoint.load_run(last)
        if meta["config"] != config:
            raise cli.UserError(f"--resume: {last} was saved with {meta['config']}, this run has {config}")
        G.load_state_dict(checkpoint.subset(arrays, "G"))
        opt.load_state_dict(checkpoint.subset(arrays, "opt"))
        if ae is not None:
            ae.load_state_dict(checkpoint.subset(arrays, "AE"))
            X = encode(ae, (data.to_float(data.load_mnist("train", data_dir=args.data_dir)[0]) + 1) / 2) \
                if not args.quick else X
        sigmas = [float(s) for s in arrays["sigmas"]]
        run.update({k: meta[k] for k in ("epoch", "step_in_epoch", "step", "rng_state")},
                   history=arrays["history"].tolist())
        print(f"resumed from {last} (epoch {run['epoch']}, step {run['step']})")
    batch = min(args.batch_size, len(X))
    per_epoch = len(X) // batch
    print(f"GMMN on {args.data} {args.space if args.data == 'mnist' else ''}: {len(X):,} targets of {X.shape[1]} "
          f"numbers, batch {batch}, bandwidths {', '.join(f'{s:.3g}' for s in sigmas)}")
    stop = []
    handlers = {s: signal.signal(s, lambda signum, frame: stop.append(signal.Signals(signum).name))
                for s in (signal.SIGINT, signal.SIGTERM)}

    def save():
        arrays = {**checkpoint.with_prefix(G.state_dict(), "G"), **checkpoint.with_prefix(opt.state_dict(), "opt"),
                  "sigmas": np.array(sigmas), "history": np.array(run["history"], np.float64).reshape(-1, 3)}
        if ae is not None:
            arrays.update(checkpoint.with_prefix(ae.state_dict(), "AE"))
        if not all(np.isfinite(v).all() for k, v in arrays.items() if k.startswith("G/")):
            raise TrainingDiverged(f"non-finite weights at step {run['step']}; the last good checkpoint is {last}")
        path = folder / checkpoint.name_for(run["epoch"], run["step"])
        checkpoint.save(path, arrays, dict(config=config, **{k: run[k] for k in ("epoch", "step_in_epoch", "step",
                                                                                  "rng_state")}))
        checkpoint.prune(folder, 3)
        return path

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    try:
        while run["epoch"] < (2 if args.quick else args.epochs):
            run["rng_state"] = run["rng_state"] or rng.bit_generator.state
            rng.bit_generator.state = run["rng_state"]  # the epoch's draws, again on a resume
            order = rng.permutation(len(X))
            zs = rng.standard_normal((per_epoch, batch, args.nz)).astype(np.float32)
            values = []
            for i in range(run["step_in_epoch"], per_epoch):
                if stop:
                    last = save()
                    raise cli.Stopped(f"interrupted ({stop[0]}): saved {last}; continue with --resume", stop[0])
                fake = G.forward(zs[i])
                value, dfake = mmd2(fake.reshape(batch, -1), X[order[i * batch:(i + 1) * batch]], sigmas,
                                    check_finite=False)
                if not np.isfinite(value):
                    raise TrainingDiverged(f"non-finite MMD² at step {run['step'] + 1} (epoch {run['epoch'] + 1}). "
                                           f"Training stopped; the last good checkpoint is {last}")
                G.backward(dfake.reshape(fake.shape))
                opt.step()
                values.append(float(value))
                run["step"], run["step_in_epoch"] = run["step"] + 1, i + 1
            run["history"].append([run["step"], run["epoch"] + 1, float(np.mean(values)) if values else np.nan])
            run.update(epoch=run["epoch"] + 1, step_in_epoch=0, rng_state=rng.bit_generator.state)
            last = save()
            print(f"epoch {run['epoch']}: MMD² {run['history'][-1][2]:.5f}  ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    print(f"wrote {last}")
    score(G, ae, config, args, test=test)
    return 0


def score(G, ae, config, args, npy=False, test=None):
    """Draw the scored samples (and write them to --out/samples.npy when npy), then score them:
    modes and quality in 2-D; FID, IS and classes against the MNIST test split (`test`, as test_split
    returns it, or found now) where it can be found."""
    n = 64 if args.quick else args.n_score or (10000 if config["data"] == "mnist" else 2500)
    z = np.random.default_rng([args.seed, 2]).standard_normal((n, config["nz"]))
    samples = generate(G, ae, z.astype(np.float32))
    args.out.mkdir(parents=True, exist_ok=True)
    if npy:
        with checkpoint.atomic_file(args.out / "samples.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, samples.astype(np.float32))
        print(f"wrote {args.out / 'samples.npy'}: {samples.shape} float32")
    if config["data"] != "mnist":
        s = metrics.mixture_score(samples, config["data"])
        print(f"{config['data']}: {s['modes']} modes, {100 * s['high_quality']:.1f}% high quality, "
              f"reverse KL {s['reverse_kl']:.3f} ({len(samples):,} samples)")
        viz.save_samples(args.out / "samples.png", {f"GMMN, {s['modes']} modes": samples[:2500]},
                         reference=metrics.mixture(config["data"])[0])
        return samples
    path = viz.save_samples(args.out / "samples.png", {f"GMMN ({config['space']})": samples[:64]})
    print(f"wrote {path}")
    if args.quick:
        return samples
    try:
        test, source = test or test_split(args)
    except data.DataError as e:
        if args.test_dir is not None:
            raise
        print(f"not scored: {e}\n(the samples are in {path}; score them later with --sample CKPT --test-dir DIR)")
        return samples
    r = metrics.evaluate(samples, test)
    print(f"scored {len(samples):,} samples against {source}: FID {r['fid']:.2f}, FID (second extractor) "
          f"{r['fid_shift']:.2f}, IS {r['inception_score']:.2f}, classes {r['classes_present']}, "
          f"KL to uniform {r['kl_to_uniform']:.4f}, KID {r['kid']:.4f}")
    return samples


def test_split(args):
    """(the MNIST test split as floats in [-1, 1], where it came from): --test-dir, or the loader's search."""
    test, _, source = data.load_mnist("test", data_dir=args.test_dir, log=lambda *a: None)
    return data.to_float(test), source


def sample_only(args):
    arrays, meta = checkpoint.load_run(args.sample)
    config = meta["config"]
    if config.get("kind") != "gmmn":
        raise cli.UserError(f"--sample: {args.sample} is not a GMMN checkpoint (demos/gmmn.py writes those)")
    G = generator(config, config["width"])
    G.load_state_dict(checkpoint.subset(arrays, "G"))
    ae = None
    if config["space"] == "code":
        ae = models.autoencoder(config["code"], seed=config["seed"])
        ae.load_state_dict(checkpoint.subset(arrays, "AE"))
    args.quick = False
    score(G, ae, config, args, npy=args.npy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
