"""The Gaussian-kernel matrix and MMD² with its gradient: each backend against baselines and a
lower bound, all measured in one run.

    python benchmarks/gaussian_kernel.py [--sizes 64 128 256 1024 4096] [--dims 64 784] [--repeat 5]

Columns (ms, then ratios): each minigan backend; "plain", the GEMM trick written plainly in
NumPy (‖x‖² + ‖y‖² − 2XYᵀ, then one exp per bandwidth, no centering, no fusing); scikit-learn's
rbf_kernel, one call per bandwidth (where installed); "bound", the lower bound
2·n·m·d / (this run's matmul rate at that shape) + n·m·S / (the best exp rate measured here).
For mmd2: bound = its five matmuls (Kxx, Kyy, Kxy, Wxx·X, Wxy·Y) + 3·n²·S exps.
Times are the best of --repeat runs (this is a shared machine: the fastest run is the least
disturbed one); the matmul and exp rates are measured the same way.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, machine, matmul_rate  # noqa: E402

from minigan import backend  # noqa: E402
from minigan.kernels import gaussian_kernel_matrix, mmd2  # noqa: E402
from minigan.kernels.gaussian_numba import fused_numba  # noqa: E402

S = 5


def plain(X, Y, sigmas):
    D = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2 * (X @ Y.T)
    return sum(np.exp(D * np.float32(-0.5 / s ** 2) if X.dtype == np.float32 else D * (-0.5 / s ** 2))
               for s in sigmas)


def exp_rate(n, dtype, repeat):
    """Exps per second: the better of NumPy's SIMD exp and minigan's numba fused pass (which also
    forms D from the Gram matrix, so this errs on the fast side, making the bound tighter)."""
    a = -np.random.default_rng(0).random(n * n).astype(dtype)
    out = np.empty_like(a)
    t_np = best_time(lambda: np.exp(a, out=out), repeat) / a.size
    G = np.zeros((n, n), dtype)
    zeros = np.zeros(n, dtype)
    t_nb = best_time(lambda: fused_numba(zeros, zeros, G, [1.0] * S, False), repeat) / (n * n * S)
    return 1 / min(t_np, t_nb)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 1024, 4096])
    p.add_argument("--dims", type=int, nargs="+", default=[64, 784])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--repeat", type=int, default=9)
    args = p.parse_args()
    try:
        from sklearn.metrics.pairwise import rbf_kernel
    except ImportError:
        rbf_kernel = None
    gpu = backend.cupy_available()[0]
    print(machine())
    print(f"scikit-learn: {'yes' if rbf_kernel else 'not installed'}; CuPy with a GPU: {'yes' if gpu else 'no'}; "
          f"S = {S} bandwidths")
    head = (f"{'dtype':7s} {'n':>5s} {'d':>4s} | {'numpy':>8s} {'numba':>8s}" + (f" {'cupy':>8s}" if gpu else "")
            + f" {'plain':>8s} {'sklearn':>8s} {'bound':>8s} | {'plain/numba':>11s} {'numba/bound':>11s}"
            f" {'sklearn/numba':>13s} | {'mmd2':>8s} {'mmd bound':>9s} {'mmd/bound':>9s}")
    print(head)
    for dtype in map(np.dtype, args.dtypes):
        for d in args.dims:
            for n in args.sizes:
                rng = np.random.default_rng(0)
                X, Y = rng.random((n, d), dtype=np.float32).astype(dtype), rng.random((n, d), dtype=np.float32).astype(dtype)
                sig = list(np.sqrt(d / 6) * np.array([0.25, 0.5, 1, 2, 4]))  # median distance of U(0,1)^d ~ sqrt(d/6)
                r = args.repeat if n < 4096 else max(3, args.repeat // 2)
                t = {b: best_time(lambda: gaussian_kernel_matrix(X, Y, sig, backend=b), r) for b in ("numpy", "numba")}
                if gpu:
                    cp = backend.get("cupy")
                    Xg, Yg = cp.asarray(X), cp.asarray(Y)

                    def on_gpu():
                        gaussian_kernel_matrix(Xg, Yg, sig)
                        cp.cuda.Device().synchronize()
                    t["cupy"] = best_time(on_gpu, r)
                t["plain"] = best_time(lambda: plain(X, Y, sig), r)
                t["sklearn"] = (best_time(lambda: [rbf_kernel(X, Y, gamma=0.5 / s ** 2) for s in sig], max(1, r // 2))
                                if rbf_kernel else float("nan"))
                rate = matmul_rate(n, d, n, dtype, r) * 1e9
                exps = exp_rate(n, dtype, r)
                bound = 2 * n * n * d / rate + n * n * S / exps
                t_mmd = best_time(lambda: mmd2(X, Y, sig, backend="numba"), r)
                mmd_bound = 5 * 2 * n * n * d / rate + 3 * n * n * S / exps
                ms = lambda v: f"{v * 1e3:8.2f}"  # noqa: E731
                print(f"{dtype.name:7s} {n:5d} {d:4d} | {ms(t['numpy'])} {ms(t['numba'])}" + (f" {ms(t['cupy'])}" if gpu else "")
                      + f" {ms(t['plain'])} {ms(t['sklearn'])} {ms(bound)} | {t['plain'] / t['numba']:11.2f}"
                      f" {t['numba'] / bound:11.2f} {t['sklearn'] / t['numba']:13.1f} | {ms(t_mmd)} {ms(mmd_bound):>9s}"
                      f" {t_mmd / mmd_bound:9.2f}", flush=True)


if __name__ == "__main__":
    main()
