"""The Gaussian kernel, its sums and MMD² with its gradient: minigan against plain NumPy, a lower
bound and pykeops, all measured in one run.

    python benchmarks/gaussian_kernel.py [batch] [--sizes 64 128 256 512] [--dims 64 784] [--dtypes float32 float64]
    python benchmarks/gaussian_kernel.py large  [--sizes 1024 10000 100000] [--dims 64 784] [--what sum mmd2]
    python benchmarks/gaussian_kernel.py estimators [--sizes 1000 4000 16000] [--plot docs/images/kernel_estimators.png]

batch: at GAN batch sizes, gaussian_kernel_matrix and mmd2 (value and gradient) against "plain",
the GEMM trick written plainly in NumPy (‖x‖² + ‖y‖² − 2XYᵀ, one exp per bandwidth, no centring,
no NaN check; for MMD² the three blocks and the gradient's two matmuls). The calls are
interleaved and each one's best time kept (a shared machine: the fastest run is the least
disturbed); ratio = minigan / plain, so below 1.0 is faster; "paired" is the median of the
ratios of calls made back to back, which a load that comes and goes disturbs less.

large: gaussian_kernel_sum (K's row sums) and mmd2 with its gradient, each row in a fresh
subprocess that reports its time and its peak memory beyond inputs and outputs (VmHWM after
resetting it through /proc/self/clear_refs, less VmRSS before the call: BLAS and numba
allocations included). bound = the matmuls' time at this run's measured rate for the tile's
shape + the exps at this run's exp rate, both on all cores. pykeops (where importable: a
benchmark-only install) computes the same sums on the CPU in the same run.

estimators: mmd2's exact, rff (1,024 features per bandwidth) and linear estimators, unbiased, on
two Gaussians a little apart (d = 64): relative error of the value against exact (mean of three
draws), and time (value and gradient), against n.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from minigan import backend  # noqa: E402
from minigan.kernels import gaussian_kernel_matrix, gaussian_kernel_sum, mmd2, threads, tiled  # noqa: E402
from minigan.kernels.gaussian_numba import fused_numba  # noqa: E402

FACTORS = np.array([0.25, 0.5, 1, 2, 4])


def sigmas_for(d):
    return list(np.sqrt(d / 6) * FACTORS)  # the median distance of U(0,1)^d is about sqrt(d/6)


def data(n, d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d), dtype=np.float32).astype(dtype, copy=False)
    Y = rng.random((n, d), dtype=np.float32).astype(dtype, copy=False)
    return X, Y


def plain_matrix(X, Y, sigmas):
    D = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2 * (X @ Y.T)
    return sum(np.exp(D * (-0.5 / s ** 2)) for s in sigmas)


def plain_mmd2(X, Y, sigmas):
    n, m = len(X), len(Y)
    xx, yy = (X * X).sum(1), (Y * Y).sum(1)

    def block(A, aa, B, bb):
        D = aa[:, None] + bb[None, :] - 2 * (A @ B.T)
        K = W = 0
        for s in sigmas:
            E = np.exp(D * (-0.5 / s ** 2))
            K, W = K + E, W + E / s ** 2
        return K, W

    (Kxx, Wxx), (Kyy, _), (Kxy, Wxy) = block(X, xx, X, xx), block(Y, yy, Y, yy), block(X, xx, Y, yy)
    value = Kxx.mean() + Kyy.mean() - 2 * Kxy.mean()
    dX = (-2 / n ** 2) * (Wxx.sum(1)[:, None] * X - Wxx @ X) + (2 / (n * m)) * (Wxy.sum(1)[:, None] * X - Wxy @ Y)
    return value, dX


def interleaved(fns, repeat, warmup=3):
    """{name: best seconds} and {name: all seconds}, calling the functions in turn so that a
    disturbance of the shared machine hits all alike. The order rotates every repetition: a call
    that always ran right after another would find its inputs in the cache that one left, or
    the cache emptied by it (at n = 64, d = 784, X and Y fit in a core's L2)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times = {k: [] for k in fns}
    for r in range(repeat):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}, times


def paired_ratio(times, a, b):
    """The median over repetitions of a's time / b's time in the same repetition: robust to a
    load that comes and goes (each pair ran back to back)."""
    return float(np.median(np.array(times[a]) / np.array(times[b])))


def batch(args):
    gpu = backend.cupy_available()[0]
    print(f"CuPy with a GPU: {'yes' if gpu else 'no'}; S = {len(FACTORS)} bandwidths; times in µs, best of "
          f"{args.repeat} interleaved calls")
    print("| dtype | n = m | d | matrix | plain | ratio | paired | mmd2 + grad | plain | ratio | paired |"
          + (" matrix (cupy) | mmd2 (cupy) |" if gpu else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if gpu else ""))
    for dtype in map(np.dtype, args.dtypes):
        for d in args.dims:
            for n in args.sizes:
                X, Y = data(n, d, dtype)
                s = sigmas_for(d)
                t, all_t = interleaved(dict(matrix=lambda: gaussian_kernel_matrix(X, Y, s),
                                            plain=lambda: plain_matrix(X, Y, s),
                                            mmd=lambda: mmd2(X, Y, s),
                                            plain_mmd=lambda: plain_mmd2(X, Y, s)), args.repeat)
                row = (f"| {dtype.name} | {n} | {d} | {t['matrix'] * 1e6:.0f} | {t['plain'] * 1e6:.0f} | "
                       f"{t['matrix'] / t['plain']:.2f} | {paired_ratio(all_t, 'matrix', 'plain'):.2f} | "
                       f"{t['mmd'] * 1e6:.0f} | {t['plain_mmd'] * 1e6:.0f} | {t['mmd'] / t['plain_mmd']:.2f} | "
                       f"{paired_ratio(all_t, 'mmd', 'plain_mmd'):.2f} |")
                if gpu:
                    cp = backend.get("cupy")
                    Xg, Yg = cp.asarray(X), cp.asarray(Y)
                    sync = cp.cuda.Device().synchronize
                    g, _ = interleaved(dict(matrix=lambda: (gaussian_kernel_matrix(Xg, Yg, s), sync()),
                                            mmd=lambda: (mmd2(Xg, Yg, s, check_finite=False), sync())), args.repeat)
                    row += f" {g['matrix'] * 1e6:.0f} | {g['mmd'] * 1e6:.0f} |"
                print(row, flush=True)


# ---- large: one subprocess per row ------------------------------------------------------------

def _status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _measure(what, n, d, dtype):
    """In a fresh process: seconds and peak bytes beyond inputs and outputs of one call."""
    X, Y = data(n, d, dtype)
    s = sigmas_for(d)
    small_X, small_Y = data(300, d, dtype)
    call = {"sum": lambda A, B: gaussian_kernel_sum(A, B, s),
            "mmd2": lambda A, B: mmd2(A, B, s)}[what]
    call(small_X, small_Y)  # compile numba before measuring memory
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to VmRSS
    before = _status("VmRSS")
    t = time.perf_counter()
    out = call(X, Y)
    seconds = time.perf_counter() - t
    out_bytes = sum(a.nbytes for a in (out if isinstance(out, tuple) else (out,)))
    return dict(seconds=seconds, peak_mb=(_status("VmHWM") - before - out_bytes) / 2 ** 20)


def _keops_sum(X, Y, sigmas):
    from pykeops.numpy import LazyTensor
    x_i, y_j = LazyTensor(X[:, None, :]), LazyTensor(Y[None, :, :])
    D = ((x_i - y_j) ** 2).sum(-1)
    K = (-D * float(0.5 / sigmas[0] ** 2)).exp()
    for s in sigmas[1:]:
        K = K + (-D * float(0.5 / s ** 2)).exp()
    return K.sum(axis=1)


def _measure_keops(n, d, dtype):
    X, Y = data(n, d, dtype)
    s = sigmas_for(d)
    _keops_sum(*data(300, d, dtype), s)  # compiles the formula on first use
    t = time.perf_counter()
    _keops_sum(X, Y, s)
    return dict(seconds=time.perf_counter() - t)


def rates(d, dtype, repeat=5):
    """(matmul FLOP/s for one tile's shape on all cores, exps/s of the fused pass on all cores)."""
    C = tiled.tile_cols(d, dtype.itemsize)
    A, B = data(C, d, dtype)
    G = np.empty((C, C), dtype)
    t_mm = min(_timed(lambda: np.matmul(A, B.T, out=G)) for _ in range(repeat))
    xx = np.zeros(C, dtype)
    Gs = [np.zeros((C, C), dtype) for _ in range(threads.workers())]
    s = [1.0] * len(FACTORS)

    def all_cores():
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(len(Gs)) as pool:
            list(pool.map(lambda g: fused_numba(xx, xx, g, s, write=False), Gs))
    t_exp = min(_timed(all_cores) for _ in range(repeat))
    return 2 * C * C * d / t_mm, len(Gs) * C * C * len(s) / t_exp


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def large(args):
    keops_python = args.keops_python or sys.executable
    keops = subprocess.run([keops_python, "-c", "import pykeops"], capture_output=True).returncode == 0
    print(f"pykeops: {'yes (its CPU backend)' if keops else 'not importable here'}; workers: {threads.workers()}; "
          f"times in s, peak memory beyond inputs and outputs in MB (VmHWM)")
    print("| what | dtype | n = m | d | time | bound | time/bound | peak MB |" + (" pykeops | pykeops/ours |" if keops else ""))
    print("|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if keops else ""))
    for dtype in map(np.dtype, args.dtypes):
        for d in args.dims:
            flops, exps = rates(d, dtype)
            keops_seen = None
            for n in args.sizes:
                for what in args.what:
                    r = _child(["_measure", what, n, d, dtype.name])
                    S = len(FACTORS)
                    if what == "sum":
                        pairs, mm_pairs = n * n, n * n
                    else:  # Kxx, Kxy rows of X, Kyy's upper triangle; the gradient's matmuls over n·2n
                        pairs = n * 2 * n + n * n / 2
                        mm_pairs = pairs + n * 2 * n
                    bound = mm_pairs * 2 * d / flops + pairs * S / exps
                    row = (f"| {'K 1' if what == 'sum' else 'mmd2 + grad'} | {dtype.name} | {n:,} | {d} | "
                           f"{r['seconds']:.3g} | {bound:.3g} | {r['seconds'] / bound:.2f} | {r['peak_mb']:.0f} |")
                    if keops:
                        guess = keops_seen[0] * (n / keops_seen[1]) ** 2 if keops_seen else 0
                        if what != "sum":
                            row += " | |"
                        elif guess > args.keops_max:  # its time grows as n²: say what it would be
                            row += f" ≈ {guess:.3g} (not run) | ≈ {guess / r['seconds']:.0f} |"
                        else:
                            k = _child(["_measure_keops", n, d, dtype.name], python=keops_python)
                            keops_seen = (k["seconds"], n)
                            row += f" {k['seconds']:.3g} | {k['seconds'] / r['seconds']:.1f} |"
                    print(row, flush=True)


def _child(argv, python=None):
    out = subprocess.run([python or sys.executable, __file__, "_child", json.dumps(argv)], capture_output=True,
                         text=True, env={**os.environ})
    if out.returncode:
        raise RuntimeError(f"child {argv} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- estimators -------------------------------------------------------------------------------

def estimators(args, seeds=3):
    print(f"| n = m | d | exact (s) | rff (s) | rff rel. error | linear (s) | linear rel. error |  (errors: mean of "
          f"{seeds} draws; times: the first)")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    d = args.dims[0]
    s = list(np.sqrt(2 * d) * FACTORS)
    for est in ("exact", "rff", "linear"):  # compile and draw the features before timing
        mmd2(*data(64, d, np.float32), s, estimator=est, unbiased=True)
    rows = []
    for n in args.sizes:
        r, err = {}, {"rff": [], "linear": []}
        for seed in range(seeds):
            rng = np.random.default_rng([n, seed])
            X = rng.standard_normal((n, d)).astype(np.float32)
            Y = (rng.standard_normal((n, d)) * 1.1 + 0.1).astype(np.float32)
            for est in ("exact", "rff", "linear"):
                t = time.perf_counter()
                r[est] = float(mmd2(X, Y, s, estimator=est, unbiased=True)[0])
                if seed == 0:
                    r[est + "_s"] = time.perf_counter() - t
            for est in ("rff", "linear"):
                err[est].append(abs(r[est] - r["exact"]) / abs(r["exact"]))
        err = {k: float(np.mean(v)) for k, v in err.items()}
        rows.append((n, r, err))
        print(f"| {n:,} | {d} | {r['exact_s']:.3g} | {r['rff_s']:.3g} | {err['rff']:.3f} | {r['linear_s']:.3g} | "
              f"{err['linear']:.3f} |", flush=True)
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        ns = [r[0] for r in rows]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
        for est, mark in (("rff", "o-"), ("linear", "s-")):
            a.loglog(ns, [r[2][est] for r in rows], mark, label=est)
        a.set(xlabel="n = m", ylabel="|estimate − exact| / exact", title="error against exact (mean of 3 draws)")
        for est, mark in (("exact", "^-"), ("rff", "o-"), ("linear", "s-")):
            b.loglog(ns, [r[1][est + "_s"] for r in rows], mark, label=est)
        b.set(xlabel="n = m", ylabel="seconds (value and gradient)", title=f"time, d = {args.dims[0]}, 2 cores")
        for ax in (a, b):
            ax.legend()
            ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "_child":
        name, *rest = json.loads(sys.argv[2])
        fn = {"_measure": _measure, "_measure_keops": _measure_keops}[name]
        rest[-1] = np.dtype(rest[-1])
        print(json.dumps(fn(*rest)))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", nargs="?", choices=["batch", "large", "estimators"], default="batch")
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--dims", type=int, nargs="+", default=[64, 784])
    p.add_argument("--dtypes", nargs="+", default=["float32"])
    p.add_argument("--what", nargs="+", choices=["sum", "mmd2"], default=["sum", "mmd2"])
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--keops-python", help="the python of a venv where pykeops is installed (default: this one)")
    p.add_argument("--keops-max", type=float, default=60,
                   help="skip pykeops where its last time scaled by n² says it would take longer (s)")
    p.add_argument("--plot", help="estimators: write the error/time plot here")
    args = p.parse_args()
    args.sizes = args.sizes or {"batch": [64, 128, 256, 512], "large": [1024, 10000, 100000],
                                "estimators": [1000, 2000, 4000, 8000, 16000, 32000]}[args.part]
    print(machine())
    {"batch": batch, "large": large, "estimators": estimators}[args.part](args)


if __name__ == "__main__":
    main()
