"""Pictures for people: sample grids and training curves, as PNG files (matplotlib, Agg)."""
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .checkpoint import atomic_file  # noqa: E402


def tile(images, nrow=8, pad=2):
    """(N, 1, H, W) images in [-1, 1] -> one (rows*(H+pad)+pad, nrow*(W+pad)+pad) array in [0, 1]."""
    images = np.clip((np.asarray(images, np.float32)[:, 0] + 1) / 2, 0, 1)
    n, h, w = images.shape
    rows = -(-n // nrow)
    grid = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad), np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return grid


def _save(fig, path):
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def save_samples(path, panels, nrow=8, reference=None):
    """One PNG with a titled panel per entry of panels = {"eval-mode BatchNorm": samples, ...}:
    a grid for images (N, 1, H, W), a scatter plot for points (N, 2) (over `reference` points,
    e.g. the true means of a mixture, when given)."""
    aspect = max(-(-len(v) // nrow) / nrow if np.ndim(v) == 4 else 1.0 for v in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2 * aspect + 0.5), squeeze=False)
    for ax, (title, samples) in zip(axes[0], panels.items()):
        samples = np.asarray(samples)
        if samples.ndim == 4:
            ax.imshow(tile(samples, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
        else:
            ax.scatter(samples[:, 0], samples[:, 1], s=4, alpha=0.5, label="samples")
            if reference is not None:
                ax.scatter(reference[:, 0], reference[:, 1], s=30, c="red", marker="x", label="true means")
                ax.legend(loc="upper right", fontsize=7)
            ax.set_aspect("equal")
        ax.set_title(textwrap.fill(title, 40))  # a long title wraps instead of running off the figure
    fig.tight_layout()
    return _save(fig, path)


def plot_history(path, rows):
    """Loss_D, Loss_G (and the MMD term) and D(x), D(G(z)) against the step, from log rows."""
    step = np.array([r["step"] for r in rows])
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for key, label in (("loss_d", "Loss_D"), ("loss_g", "Loss_G"), ("mmd", "MMD² (unweighted)")):
        if any(r.get(key) for r in rows):
            a.plot(step, [r[key] for r in rows], label=label)
    a.set_ylabel("loss")
    a.legend()
    for key, label in (("d_x", "D(x)"), ("d_g_z", "D(G(z))")):
        b.plot(step, [r[key] for r in rows], label=label)
    b.set_ylim(0, 1)
    b.set_xlabel("step")
    b.set_ylabel("mean sigmoid output")
    b.legend()
    fig.tight_layout()
    return _save(fig, path)
