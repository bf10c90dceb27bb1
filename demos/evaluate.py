"""Measure a trained DCGAN generator, or samples saved as .npy (any demo's --sample --npy):
classifier FID, classifier IS, KID, the class histogram and a kernel two-sample test, each
beside its real-versus-real value (the training split against the test split: the floor).

    python demos/evaluate.py runs/mnist_gan/checkpoints/ckpt-e051-s0001989.npz
    python demos/evaluate.py runs/gmmn/mnist-pixels/samples.npy

The two-sample test (minigan.kernels.mmd_test) asks whether the samples and the test split could
come from one distribution, on the classifier's 64 features: the unbiased MMD² with Gaussian
kernels at the median distance times 0.25 .. 4, and its p-value over random relabellings of
the pooled features. A p-value near 1/(permutations + 1) says the test tells them apart.
Uses the classifier shipped in minigan/weights (see demos/train_classifier.py).
"""
import json
import sys
from pathlib import Path

import numpy as np

from minigan import cli, data, metrics, models
from minigan.kernels import mmd_test


def generate(ckpt, n, seed=0, batch=500):
    """n samples from the checkpoint's generator (its EMA copy when the run kept one), or the
    first n of a .npy file of images (N, 1, 28, 28) in [-1, 1]."""
    if ckpt.suffix == ".npy":
        images = np.load(ckpt, allow_pickle=False)
        if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
            raise cli.UserError(f"{ckpt}: expected images of shape (N, 1, 28, 28), got {images.shape}")
        return images[:n].astype(np.float32)
    G, meta, _ = models.load_generator(ckpt)
    z = np.random.default_rng(seed).standard_normal((n, meta["config"]["nz"])).astype(np.float32)
    return np.concatenate([G.forward(z[i:i + batch], training=False) for i in range(0, n, batch)])


def report(images, train, test, model, permutations=200, seed=0):
    """{metric: (generated vs test, train vs test)}, with the two-sample test's MMD² and p-value."""
    ours, floor = metrics.evaluate(images, test, model), metrics.evaluate(train, test, model)
    rows = {k: (ours[k], floor[k]) for k in ours}
    f_test = metrics.features_and_probs(model, test)[0]
    tests = [feature_test(x, f_test, model, permutations, seed) for x in (images, train)]
    rows["mmd2_features"] = tuple(t.mmd2 for t in tests)
    rows["mmd_p_value"] = tuple(t.p_value for t in tests)
    return rows


def feature_test(images, test_features, model, permutations=200, seed=0):
    """mmd_test of the images' classifier features against the test split's."""
    return mmd_test(metrics.features_and_probs(model, images)[0], test_features, permutations=permutations, seed=seed)


def main(argv=None):
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-n", type=int, default=10000, help="samples to generate (default 10000)")
    p.add_argument("--data-dir", type=Path, help="the training split (default: the loader's search)")
    p.add_argument("--test-dir", type=Path, help="the test split (default: the loader's search)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--permutations", type=int, default=200, help="relabellings in the two-sample test")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    cli.check_numbers(p, args, at_least_1=("n", "permutations"), at_least_0=("seed",))
    if not args.checkpoint.is_file():
        p.error(f"no checkpoint file {args.checkpoint}")
    return cli.run("evaluate.py", evaluate, args)


def evaluate(args):
    images = generate(args.checkpoint, args.n, args.seed)  # a damaged file is refused before the data loads
    train, _, train_source = data.load_mnist("train", data_dir=args.data_dir, log=lambda *a: None)
    test, _, test_source = data.load_mnist("test", data_dir=args.test_dir, log=lambda *a: None)
    model, record = metrics.load_classifier()
    rows = report(images, data.to_float(train), data.to_float(test), model, args.permutations, args.seed)
    if args.json:
        print(json.dumps({**{k: {"generated": a, "real_train_vs_test": b} for k, (a, b) in rows.items()},
                          "sources": {"train": train_source, "test": test_source}}))
        return 0
    print(f"{args.checkpoint}: {len(images)} samples; classifier test accuracy {record['test_accuracy']:.4f}")
    print(f"test split: {test_source}; training split (the floor): {train_source}")
    print(f"two-sample test on the classifier's features, {args.permutations} permutations: p-value "
          f"{rows['mmd_p_value'][0]:.3g} for the samples, {rows['mmd_p_value'][1]:.3g} for the training split")
    print(f"{'metric':18s} {'generated':>12s} {'real (floor)':>14s}")
    for k, (a, b) in rows.items():
        if isinstance(a, list):
            print(f"{k:18s} {' '.join(f'{v:.3f}' for v in a)}\n{'':18s} {' '.join(f'{v:.3f}' for v in b)}  (real)")
        else:
            print(f"{k:18s} {a:12.4f} {b:14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
