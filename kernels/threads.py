"""Worker threads for NumPy's fast paths: one per core, each doing its matmuls with one BLAS
thread while they run.

Why not BLAS's own threads: a matmul split over the cores waits at a barrier for every core at
every call; for the few-MB matmuls of a cache-sized task that wait is a large part of the call,
and on a shared machine, where a core is sometimes taken away for a while, it is most of it.
Worker threads that each own whole tasks never wait for one another until the end. numba's
loops release the GIL (nogil=True), and NumPy's matmuls and copies release it too.

One thing fights them: after a matmul on BLAS's own threads, OpenBLAS keeps its threads
spinning for a while (a tenth of a second and more), and a task that starts then shares its
core with one (the DCGAN's first transposed convolution, right after the Dense layer's matmul,
took 55 ms instead of 29). So GANTrainer.train_step runs the whole step under
one_blas_thread(): its few matmuls outside the convolutions are small.
"""
import contextlib
import functools
import os
from concurrent.futures import ThreadPoolExecutor

_pool = {}


@functools.cache
def workers():
    """The number of worker threads (read once): $MINIGAN_THREADS where it is set (to run several
    trainings side by side without their threads fighting for the cores), else the cores this
    process may run on."""
    value = os.environ.get("MINIGAN_THREADS", "").strip()
    if value:
        if not (value.isdigit() and int(value) >= 1):
            raise ValueError(f"MINIGAN_THREADS: expected a whole number of threads, 1 or more, got {value!r}")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (found once), or None where it is missing."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def pool():
    """One pool of worker threads per process, made on first use (threads cost ~1 ms to start)."""
    pid = os.getpid()  # a forked child gets its own
    if pid not in _pool:
        _pool.clear()
        _pool[pid] = ThreadPoolExecutor(workers(), thread_name_prefix="minigan-kernels")
    return _pool[pid]


def blocks(n, w):
    """range(n) as w contiguous (lo, hi) blocks of (nearly) equal size."""
    edges = [n * k // w for k in range(w + 1)]
    return list(zip(edges, edges[1:]))


def one_blas_thread():
    """A context in which BLAS runs one thread per calling thread (process-wide: threadpoolctl);
    it does nothing where threadpoolctl is missing."""
    controller = _blas_controller()
    return controller.limit(limits=1, user_api="blas") if controller else contextlib.nullcontext()


def run(work, tasks):
    """[work(t) for t in tasks]: on the worker threads, each with one BLAS thread for the duration
    of the call, where there is more than one task; in this thread otherwise (with the BLAS
    threads the caller set). A task's exception is raised here, the first in task order."""
    if len(tasks) <= 1:
        return [work(t) for t in tasks]
    with one_blas_thread():
        return list(pool().map(work, tasks))
