"""An undercomplete autoencoder on MNIST from minigan's layers, trained with MSE: how much a
narrow code keeps. Prints test MSE per code size and writes a grid of reconstructions.

    python demos/autoencoder.py                          # codes 8, 32, 128 (dense)
    python demos/autoencoder.py --conv --codes 32
    python demos/autoencoder.py --quick --out /tmp/ae    # a few steps (tests)

Both splits come from the data loader's search (--data-dir / --test-dir, $MINIGAN_DATA_DIR,
the cache, a download; offline, training falls back to 5,000 digits); it prints where each
came from.
"""
import sys
import time
from pathlib import Path

import numpy as np

from minigan import cli, data, init, viz
from minigan.layers import (Conv2D, ConvTranspose2D, Dense, Flatten, ReLU, Reshape, Sequential, Sigmoid)
from minigan.losses import mse
from minigan.models import autoencoder
from minigan.optim import Adam


def conv_autoencoder(code_size, *, seed=0):
    """28x28 -> 16x14x14 -> 32x7x7 -> code -> 32x7x7 -> 16x14x14 -> 28x28 (sigmoid)."""
    rng = init.as_generator(seed)
    return Sequential(
        Conv2D(1, 16, 3, stride=2, padding=1, rng=rng), ReLU(), Conv2D(16, 32, 3, stride=2, padding=1, rng=rng),
        ReLU(), Flatten(), Dense(32 * 49, code_size, rng=rng), Dense(code_size, 32 * 49, rng=rng), ReLU(),
        Reshape((32, 7, 7)), ConvTranspose2D(32, 16, 3, stride=2, padding=1, output_padding=1, rng=rng), ReLU(),
        ConvTranspose2D(16, 1, 3, stride=2, padding=1, output_padding=1, rng=rng), Sigmoid())


def train(model, x, x_test, *, epochs, batch, lr, seed):
    opt = Adam(model, lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x) - batch + 1, batch):
            target = x[order[i:i + batch]]
            _, grad = mse(model.forward(target), target)
            model.backward(grad)
            opt.step()
    recon = np.concatenate([model.forward(x_test[i:i + 500], training=False) for i in range(0, len(x_test), 500)])
    return float(np.mean((recon - x_test) ** 2)), recon


def main(argv=None):
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("--codes", type=int, nargs="+", default=[8, 32, 128], help="code sizes, one autoencoder each")
    p.add_argument("--conv", action="store_true", help="the convolutional variant")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training split")
    p.add_argument("--batch-size", type=int, default=64, help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and the shuffling")
    p.add_argument("--data-dir", type=Path, help="folder with the training split (default: the loader's search)")
    p.add_argument("--test-dir", type=Path, help="folder with the test split (default: the loader's search)")
    p.add_argument("--quick", action="store_true", help="synthetic data, one epoch: checks the pipeline")
    p.add_argument("--out", type=Path, default=Path("runs/autoencoder"))
    args = p.parse_args(argv)
    cli.check_numbers(p, args, at_least_1=("epochs", "batch_size"), at_least_0=("seed",), positive=("lr",))
    if min(args.codes) < 1:
        p.error(f"--codes: expected sizes of at least 1, got {' '.join(map(str, args.codes))}")
    return cli.run("autoencoder.py", run, args)


def run(args):
    if args.quick:
        rng = np.random.default_rng(0)
        x, x_test = rng.uniform(0, 1, (128, 1, 28, 28)).astype(np.float32), rng.uniform(0, 1, (32, 1, 28, 28)).astype(np.float32)
        args.epochs, args.codes = 1, args.codes[:1]
    else:
        u8, _, source = data.load_mnist("train", data_dir=args.data_dir)
        test_u8, _, test_source = data.load_mnist("test", data_dir=args.test_dir)
        print(f"data: {source}; {test_source}", flush=True)
        x, x_test = (data.to_float(u8) + 1) / 2, (data.to_float(test_u8) + 1) / 2  # [0, 1]
    if args.batch_size > len(x):
        raise cli.UserError(f"--batch-size {args.batch_size}: expected at most the {len(x):,} training images")
    kind = "conv" if args.conv else "dense"
    print(f"{'model':8s} {'code':>5s} {'test MSE':>9s} {'seconds':>8s}")
    panels = {"original": x_test[:32] * 2 - 1}
    for code in args.codes:
        model = conv_autoencoder(code, seed=args.seed) if args.conv else autoencoder(code, seed=args.seed)
        start = time.perf_counter()
        loss, recon = train(model, x, x_test, epochs=args.epochs, batch=args.batch_size, lr=args.lr, seed=args.seed)
        print(f"{kind:8s} {code:5d} {loss:9.5f} {time.perf_counter() - start:8.0f}", flush=True)
        panels[f"code {code}"] = recon[:32] * 2 - 1
    path = viz.save_samples(args.out / f"reconstructions_{kind}.png", panels)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
