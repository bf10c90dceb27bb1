"""Measure a trained DCGAN generator: classifier FID, classifier IS, KID and the class histogram,
each beside its real-versus-real value (the training split against the test split: the floor).

    python demos/evaluate.py runs/mnist_gan/checkpoints/ckpt-e015-s0001170.npz --test-dir ../shared/data/mnist

Uses the classifier shipped in minigan/weights (see demos/train_classifier.py).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from minigan import cli, data, metrics, models


def generate(ckpt, n, seed=0, batch=500):
    """n samples from the checkpoint's generator (its EMA copy when the run kept one)."""
    G, meta, _ = models.load_generator(ckpt)
    z = np.random.default_rng(seed).standard_normal((n, meta["config"]["nz"])).astype(np.float32)
    return np.concatenate([G.forward(z[i:i + batch], training=False) for i in range(0, n, batch)])


def report(images, train, test, model):
    """{metric: (generated vs test, train vs test)}."""
    ours, floor = metrics.evaluate(images, test, model), metrics.evaluate(train, test, model)
    return {k: (ours[k], floor[k]) for k in ours}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-n", type=int, default=10000, help="samples to generate (default 10000)")
    p.add_argument("--data-dir", type=Path, help="the training split (default: the loader's search)")
    p.add_argument("--test-dir", type=Path, help="the test split (default: the loader's search)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    cli.check_numbers(p, args, at_least_1=("n",), at_least_0=("seed",))
    if not args.checkpoint.is_file():
        p.error(f"no checkpoint file {args.checkpoint}")
    return cli.run("evaluate.py", evaluate, args)


def evaluate(args):
    images = generate(args.checkpoint, args.n, args.seed)  # a damaged file is refused before the data loads
    train = data.to_float(data.load_mnist("train", data_dir=args.data_dir, log=lambda *a: None)[0])
    test = data.to_float(data.load_mnist("test", data_dir=args.test_dir, log=lambda *a: None)[0])
    model, record = metrics.load_classifier()
    rows = report(images, train, test, model)
    if args.json:
        print(json.dumps({k: {"generated": a, "real_train_vs_test": b} for k, (a, b) in rows.items()}))
        return 0
    print(f"{args.checkpoint}: {len(images)} samples; classifier test accuracy {record['test_accuracy']:.4f}")
    print(f"{'metric':18s} {'generated':>12s} {'real (floor)':>14s}")
    for k, (a, b) in rows.items():
        if isinstance(a, list):
            print(f"{k:18s} {' '.join(f'{v:.3f}' for v in a)}\n{'':18s} {' '.join(f'{v:.3f}' for v in b)}  (real)")
        else:
            print(f"{k:18s} {a:12.4f} {b:14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
