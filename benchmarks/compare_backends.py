"""One DCGAN training step on NumPy and on CuPy from the same weights and batch: the losses and
every gradient side by side (the GPU check's correctness half; benchmarks/gpu_check.sh runs it).

    python benchmarks/compare_backends.py [--batch 64] [--rtol 1e-4]

Prints the largest relative difference of each array (‖a − b‖ / ‖a‖) and exits 1 when one is
above --rtol.
"""
import argparse
import sys

import numpy as np

from minigan import backend, models
from minigan.trainer import GANTrainer


def one_step(backend_name, batch, seed=0, **options):
    """(stats, {name: gradient}) of one train_step on `backend_name`, all on the host."""
    t = GANTrainer(models.dcgan_generator(100, seed=seed), models.dcgan_discriminator(seed=seed + 1), nz=100,
                   backend=backend_name, log=lambda *a: None, seed=seed, **options)
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32)
    z = rng.standard_normal((batch, 100)).astype(np.float32)
    xp = t.xp
    stats = backend.to_host(t.train_step(xp.asarray(real), xp.asarray(z)))
    grads = {f"G/{k}": backend.to_host(g) for k, g in t.G.grads.items()}
    grads.update({f"D/{k}": backend.to_host(g) for k, g in t.D.grads.items()})
    grads.update({f"G.params/{k}": backend.to_host(v) for k, v in t.G.params.items()})
    return stats, grads


def compare(batch=64, **options):
    """{name: relative difference} between the NumPy and the CuPy step."""
    (s_np, g_np), (s_cp, g_cp) = one_step("numpy", batch, **options), one_step("cupy", batch, **options)
    diffs = {"stats": float(np.linalg.norm(s_np - s_cp) / max(np.linalg.norm(s_np), 1e-30))}
    for k, a in g_np.items():
        diffs[k] = float(np.linalg.norm(a - g_cp[k]) / max(np.linalg.norm(a), 1e-30))
    return diffs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rtol", type=float, default=1e-4)
    args = p.parse_args()
    ok, reason = backend.cupy_available()
    if not ok:
        print(f"compare_backends.py: {reason}", file=sys.stderr)
        return 2
    diffs = compare(args.batch)
    worst = max(diffs.values())
    for k, v in sorted(diffs.items(), key=lambda kv: -kv[1]):
        print(f"{k:28s} {v:.2e}{'  over' if v > args.rtol else ''}")
    print(f"largest relative difference {worst:.2e} ({'within' if worst <= args.rtol else 'ABOVE'} {args.rtol:g})")
    return 0 if worst <= args.rtol else 1


if __name__ == "__main__":
    sys.exit(main())
