"""Forward and backward time of each DCGAN layer at batch 64, float32, beside a matmul of the
same size measured in the same run.

    python benchmarks/layers.py [--batch 64] [--repeat 7] [--backend numpy|cupy] [--torch]

For a convolution the "same size" matmul is its im2col product: (out_ch, C*k*k) @ (C*k*k, N*H'*W')
for Conv2D, (out_ch*k*k, in_ch) @ (in_ch, N*H*W) for ConvTranspose2D. Backward does two such
products (dx and dW), so its FLOPs are twice the forward's. Times are the best of --repeat
runs, the matmul's too (a shared machine: the fastest run is the least disturbed).

--torch also times each layer's PyTorch twin (torch.nn, CPU, as many threads as minigan's
workers; forward, then backward to the input and the weights, as minigan's backward computes),
after all of minigan's layers, to show where the two engines differ layer by layer
(`pip install torch==2.13.0`, for this comparison only).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, machine, matmul_rate, synced  # noqa: E402

from minigan import backend, models  # noqa: E402
from minigan.kernels import threads  # noqa: E402
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


def torch_twin(layer, x_shape):
    """The torch.nn module computing what `layer` does (fresh weights: only the time matters), or None."""
    from torch import nn

    from minigan.layers import BatchNorm, LeakyReLU, Tanh
    if isinstance(layer, Dense):
        return nn.Linear(layer.in_features, layer.out_features, bias="b" in layer.params)
    if isinstance(layer, Conv2D):
        return nn.Conv2d(layer.in_ch, layer.out_ch, layer.kernel_size, layer.stride, layer.padding,
                         bias="b" in layer.params)
    if isinstance(layer, ConvTranspose2D):
        return nn.ConvTranspose2d(layer.in_ch, layer.out_ch, layer.kernel_size, layer.stride, layer.padding,
                                  layer.output_padding, bias="b" in layer.params)
    if isinstance(layer, BatchNorm):
        return (nn.BatchNorm1d if len(x_shape) == 2 else nn.BatchNorm2d)(x_shape[1])
    if isinstance(layer, LeakyReLU):
        return nn.LeakyReLU(layer.negative_slope)
    if isinstance(layer, Tanh):
        return nn.Tanh()
    return None


def torch_times(layer, x, dy, repeat):
    """(forward s, backward s) of layer's PyTorch twin on the same shapes, or None."""
    import torch
    twin = torch_twin(layer, x.shape)
    if twin is None:
        return None
    xt = torch.from_numpy(np.asarray(x)).clone().requires_grad_(True)
    dyt = torch.from_numpy(np.asarray(dy))
    yt = twin(xt)

    def backward():  # through one kept forward graph, to the input and the weights
        xt.grad = None
        twin.zero_grad()
        yt.backward(dyt, retain_graph=True)
    return best_time(lambda: twin(xt), repeat), best_time(backward, repeat)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                   help="cupy: the GPU, each timing ending with a device synchronize")
    p.add_argument("--torch", action="store_true", help="also time each layer's PyTorch twin (CPU)")
    args = p.parse_args()
    if args.torch and args.backend != "numpy":
        p.error("--torch compares on the CPU: use it with --backend numpy")
    xp = backend.get(args.backend)
    print(machine() + ("" if xp is np else f"; CuPy {xp.__version__} on the GPU"))
    rng = np.random.default_rng(0)
    rows, twins = [], []  # twins: each layer's (layer, x, dy), for its PyTorch twin (--torch)
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
            twins.append((layer, x, dy) if args.torch else None)
            if shape:
                flops = 2 * np.prod(shape, dtype=np.float64)
                ref = matmul_rate(*shape, repeat=args.repeat, xp=xp)
                rows.append((f"{name}.{i} {layer!r}"[:62], t_f, t_b, flops / t_f / 1e9, 2 * flops / t_b / 1e9, ref))
            else:
                rows.append((f"{name}.{i} {layer!r}"[:62], t_f, t_b, None, None, None))
            x = y
    if args.torch:  # after minigan's layers, so that PyTorch's spinning OpenMP threads slow none of them
        import torch
        torch.set_num_threads(threads.workers())
    rows = [row + (twin and torch_times(*twin, args.repeat),) for row, twin in zip(rows, twins)]
    print(f"{'layer':62s} {'fwd ms':>7s} {'bwd ms':>7s} {'fwd GF/s':>9s} {'bwd GF/s':>9s} {'matmul GF/s':>11s} {'fwd/mm':>6s} {'bwd/mm':>6s}"
          + (f" {'torch fwd':>9s} {'torch bwd':>9s}" if args.torch else ""))
    for name, t_f, t_b, gf, gb, ref, theirs in rows:
        line = f"{name:62s} {t_f * 1e3:7.2f} {t_b * 1e3:7.2f}"
        line += f" {gf:9.1f} {gb:9.1f} {ref:11.1f} {gf / ref:6.2f} {gb / ref:6.2f}" if ref else " " * 46
        print(line + (f" {theirs[0] * 1e3:9.2f} {theirs[1] * 1e3:9.2f}" if theirs else ""))
    total = f"{'total':62s} {sum(r[1] for r in rows) * 1e3:7.2f} {sum(r[2] for r in rows) * 1e3:7.2f}"
    if args.torch:
        total += " " * 46 + "".join(f" {sum(r[6][j] for r in rows if r[6]) * 1e3:9.2f}" for j in (0, 1))
    print(total)


if __name__ == "__main__":
    main()
