"""Forward and backward time of each DCGAN layer at batch 64, float32, beside a matmul of the
same size measured in the same run.

    python benchmarks/layers.py [--batch 64] [--repeat 7] [--backend numpy|cupy]

For a convolution the "same size" matmul is its im2col product: (out_ch, C*k*k) @ (C*k*k, N*H'*W')
for Conv2D, (out_ch*k*k, in_ch) @ (in_ch, N*H*W) for ConvTranspose2D. Backward does two such
products (dx and dW), so its FLOPs are twice the forward's. Times are the best of --repeat
runs, the matmul's too (a shared machine: the fastest run is the least disturbed).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, machine, matmul_rate, synced  # noqa: E402

from minigan import backend, models  # noqa: E402
from minigan.layers import Conv2D, ConvTranspose2D, Dense  # noqa: E402


def gemm_shape(layer, x_shape, y_shape):
    """(m, k, n) of the layer's forward matmul, or None for layers without one."""
    N = x_shape[0]
    if isinstance(layer, Dense):
        return N, layer.in_features, layer.out_features
    if isinstance(layer, Conv2D):
        return layer.out_ch, layer.in_ch * layer.kernel_size ** 2, N * y_shape[2] * y_shape[3]
    if isinstance(layer, ConvTranspose2D):
        return layer.out_ch * layer.kernel_size ** 2, layer.in_ch, N * x_shape[2] * x_shape[3]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                   help="cupy: the GPU, each timing ending with a device synchronize")
    args = p.parse_args()
    xp = backend.get(args.backend)
    print(machine() + ("" if xp is np else f"; CuPy {xp.__version__} on the GPU"))
    rng = np.random.default_rng(0)
    rows = []
    for name, model, x in (("G", models.dcgan_generator(), rng.standard_normal((args.batch, 100))),
                           ("D", models.dcgan_discriminator(), rng.uniform(-1, 1, (args.batch, 1, 28, 28)))):
        model.to(xp)
        x = xp.asarray(x.astype(np.float32))
        for i, layer in enumerate(model.layers):
            y = layer.forward(x)
            dy = xp.asarray(rng.standard_normal(y.shape).astype(np.float32))
            t_f = best_time(synced(lambda: layer.forward(x), xp), args.repeat)
            t_b = best_time(synced(lambda: layer.backward(dy), xp), args.repeat)
            shape = gemm_shape(layer, x.shape, y.shape)
            if shape:
                flops = 2 * np.prod(shape, dtype=np.float64)
                ref = matmul_rate(*shape, repeat=args.repeat, xp=xp)
                rows.append((f"{name}.{i} {layer!r}"[:62], t_f, t_b, flops / t_f / 1e9, 2 * flops / t_b / 1e9, ref))
            else:
                rows.append((f"{name}.{i} {layer!r}"[:62], t_f, t_b, None, None, None))
            x = y
    print(f"{'layer':62s} {'fwd ms':>7s} {'bwd ms':>7s} {'fwd GF/s':>9s} {'bwd GF/s':>9s} {'matmul GF/s':>11s} {'fwd/mm':>6s} {'bwd/mm':>6s}")
    for name, t_f, t_b, gf, gb, ref in rows:
        if ref:
            print(f"{name:62s} {t_f * 1e3:7.2f} {t_b * 1e3:7.2f} {gf:9.1f} {gb:9.1f} {ref:11.1f} {gf / ref:6.2f} {gb / ref:6.2f}")
        else:
            print(f"{name:62s} {t_f * 1e3:7.2f} {t_b * 1e3:7.2f}")
    print(f"{'total':62s} {sum(r[1] for r in rows) * 1e3:7.2f} {sum(r[2] for r in rows) * 1e3:7.2f}")


if __name__ == "__main__":
    main()
