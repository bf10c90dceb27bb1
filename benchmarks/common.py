"""Timing helpers shared by the benchmarks: medians of repeated runs, and a matmul rate measured
in the same run (ratios, not absolute times, are what carry from one machine to another)."""
import os
import platform
import time

import numpy as np


def times_of(fn, repeat=7, warmup=2):
    """Wall times of `repeat` calls of fn(), in seconds, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return np.array(times)


def median_time(fn, repeat=7, warmup=2):
    return float(np.median(times_of(fn, repeat, warmup)))


def best_time(fn, repeat=7, warmup=2):
    """The fastest of `repeat` calls: on a shared machine, the one least disturbed by others."""
    return float(times_of(fn, repeat, warmup).min())


def synced(fn, xp=np):
    """fn that, on CuPy, waits for the device before returning (so that wall time is GPU time)."""
    if xp is np:
        return fn
    return lambda: (fn(), xp.cuda.Device().synchronize())


def matmul_rate(m, k, n, dtype=np.float32, repeat=7, xp=np):
    """GFLOP/s of an (m, k) @ (k, n) matmul on this machine (or its GPU, xp=cupy), now."""
    rng = np.random.default_rng(0)
    a, b = (xp.asarray(rng.standard_normal(s).astype(dtype)) for s in ((m, k), (k, n)))
    return 2 * m * k * n / best_time(synced(lambda: a @ b, xp), repeat) / 1e9


def machine():
    """One line: processor, cores, numpy/BLAS, and whether OPENBLAS_CORETYPE is set."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        blas = "unknown BLAS"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores; numpy {np.__version__} ({blas}); "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
