"""The exact Gaussian-kernel sums and MMD², in tiles that never hold the n × m matrix.

Rows are centred on c, the mean of a few rows of X and Y (x̃ = x − c: distances are unchanged,
and float32 keeps its accuracy on a collapsed batch, every row of which is near c). For a block I of R rows and
a tile J of C columns:

    G = X̃_I Z̃_Jᵀ                         one BLAS/cuBLAS matmul, (R, C)
    ksum, wsum = fused(‖x̃‖², ‖z̃‖², G)     one pass: K's and W's row sums, W written over G
                                          (gaussian.fused_numpy says what it computes)

then, for a kernel sum, out_I += K_IJ w_J; for MMD², dX_I += Σ_J (diag(V_IJ 1) X̃_I − V_IJ Z̃_J),
with V the weighted kernel that mmd2's gradient needs (gaussian.mmd2 has the formulas).

Memory: a worker holds a block of rows, a column tile, a gradient block and its update, and a
Gram tile (TILE_BYTES in all, allocated once per call: a fresh allocation's page faults cost as
much as a tile's arithmetic here), and the row norms take O(n + m): beyond the inputs and
outputs nothing grows with n·m. Below SMALL_BYTES the centred copies of X and Y are made once;
above, each tile centres its rows.

Threads: a block of rows is a task. On the CPU, one worker thread per core takes tasks, each
doing its matmuls with one BLAS thread (threadpoolctl sets it for the duration of the call)
and the numba pass without the GIL; results are combined in task order, so the answer does
not depend on which thread ran what. Small problems run in the calling thread, with BLAS's own
threads. On CuPy the same code runs with one worker: the device takes one tile after another.
"""
import math
import threading

import numpy as np

from minigan import backend as _backend

from . import threads

TILE_BYTES = 48 << 20  # per worker
MIN_COLS = 256  # columns per tile, at the least
SMALL_BYTES = 64 << 20  # centred copies of X and Y made once below this
PARALLEL_MIN_WORK = 1 << 24  # pairs × (d + 8 S): below this one thread is faster (measured)
PARALLEL_MIN_EXPS = 1 << 21  # the matrix: exps below which one thread is faster (measured)
KEEP_BYTES = 8 << 20  # buffers up to this size are kept between calls (page faults cost here)
CENTRE_ROWS = 8  # c is the mean of this many rows of X and of Y at most

_kept = threading.local()


def _buffer(xp, name, shape, dtype):
    """An uninitialised array; on NumPy, small ones are kept per thread and reused."""
    size = math.prod(shape)
    if xp is not np or size * dtype.itemsize > KEEP_BYTES:
        return xp.empty(shape, dtype)
    store = _kept.__dict__
    key = (name, dtype.char)
    kept = store.get(key)
    if kept is None or kept.size < size:
        kept = store[key] = np.empty(size, dtype)
    return kept[:size].reshape(shape)


def tile_cols(d, itemsize):
    """Columns per tile: four blocks of C rows (rows, columns, gradient, its update) and a Gram
    tile per worker within TILE_BYTES."""
    C = 4096
    while C > MIN_COLS and (4 * C * d + C * C) * itemsize > TILE_BYTES:
        C //= 2
    return C


def check_norms(zz, dtype, name):
    """A NaN or Inf reaches its row's centred norm (in c, every row's), so their sum: one scalar
    to look at (on CuPy, one wait for the device)."""
    if not bool(_backend.xp_of(zz).isfinite(zz.sum())):
        raise ValueError(f"{name}: X and Y must be finite; found NaN or Inf (or values whose squares "
                         f"overflow {dtype})")


class Tiles:
    """X and Y centred, their row norms, the tile sizes and the fused pass for one call."""

    def __init__(self, X, Y, sigmas, fns, *, check_finite=True, name="gaussian kernel"):
        xp = self.xp = _backend.xp_of(X, Y)
        self.X, self.Y, self.sigmas, self.dtype = X, Y, sigmas, X.dtype
        self._scratch = {}
        self.fused, centre = fns
        n, m, d = len(X), len(Y), X.shape[1]
        item = X.dtype.itemsize
        self.C, self.parallel = tile_cols(d, item), False
        if (n + m) * d * item <= SMALL_BYTES:  # centre once: Z = [X̃; Ỹ]
            Z = self.buffer("Z", (n + m, d))
            self.c, zz = centre(X, Y, Z)
            self.Xc, self.Yc = Z[:n], Z[n:]
        else:
            a, b = X[:CENTRE_ROWS], Y[:CENTRE_ROWS]  # the same c as centre() takes
            self.c, _ = centre(a, b, self.buffer("Z", (len(a) + len(b), d)))
            self.Xc = self.Yc = None
            zz = xp.concatenate([xp.einsum("ij,ij->i", r, r) for r in
                                 (self.rows(w, lo, hi, "norms") for w, size in (("X", n), ("Y", m))
                                  for lo, hi in spans(size, self.C))])
        self.xx, self.yy = zz[:n], zz[n:]
        if check_finite:
            check_norms(zz, X.dtype, name)

    def rows(self, which, lo, hi, slot):
        """Rows lo:hi of X or Y, centred (a view of the kept copy, or centred into a buffer)."""
        kept = self.Xc if which == "X" else self.Yc
        if kept is not None:
            return kept[lo:hi]
        A = self.X if which == "X" else self.Y
        return self.xp.subtract(A[lo:hi], self.c, out=self.buffer(slot, (hi - lo, A.shape[1])))

    def buffer(self, name, shape):
        """An uninitialised array of X's dtype: small ones kept between calls (per thread), larger
        ones kept for this call (per worker thread), so that no tile allocates afresh."""
        if self.xp is np and math.prod(shape) * self.dtype.itemsize <= KEEP_BYTES:
            return _buffer(np, name, shape, self.dtype)
        key, size = (threading.get_ident(), name), math.prod(shape)
        kept = self._scratch.get(key)
        if kept is None or kept.size < size:
            kept = self._scratch[key] = self.xp.empty(size, self.dtype)
        return kept[:size].reshape(shape)

    def gram(self, rows_I, which, lo, hi):
        """G = X̃_I Z̃_Jᵀ for the column tile lo:hi of X or Y, in this worker's buffer."""
        cols = self.rows(which, lo, hi, "cols")
        G = self.buffer("gram", (len(rows_I), hi - lo))
        self.xp.matmul(rows_I, cols.T, out=G)
        return G, cols

    def blocks(self, n, pairs):
        """Spans of rows (tasks) for n rows and `pairs` kernel entries in all; decides whether
        worker threads pay. A block's size divides C, so it never straddles two column tiles."""
        d, S = self.X.shape[1], len(self.sigmas)
        self.parallel = self.xp is np and threads.workers() > 1 and pairs * (d + 8 * S) > PARALLEL_MIN_WORK
        R = self.C
        while self.parallel and R // 2 >= max(64, -(-n // (4 * threads.workers()))):
            R //= 2  # several tasks per worker, for balance
        self.R = R
        return spans(n, R)

    def run(self, tasks, work):
        """[work(t) for t in tasks], on worker threads with one BLAS thread each when worth it."""
        return threads.run(work, tasks) if self.parallel else [work(t) for t in tasks]


def spans(n, size):
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def kernel_sum(T, weights, same):
    """out_i = Σ_j K_ij w_j (w: (m,) or (m, p)), or Σ_j K_ij without weights; float64.
    same: Y is X, so the tile holding row i's own column gets D_ii = 0 exactly."""
    xp = T.xp
    w = None if weights is None else weights.astype(T.dtype, copy=False)

    def task(span):
        lo, hi = span
        A = T.rows("X", lo, hi, "rows")
        out = xp.zeros((hi - lo,) + (() if w is None else w.shape[1:]), np.float64)
        for clo, chi in spans(len(T.Y), T.C):
            G, _ = T.gram(A, "Y", clo, chi)
            diag = lo - clo if same and clo <= lo < chi else None
            ksum, _ = T.fused(T.xx[lo:hi], T.yy[clo:chi], G, T.sigmas, None, diag=diag, write=w is not None)
            out += ksum if w is None else (G @ w[clo:chi]).astype(np.float64)
        return out

    parts = T.run(T.blocks(len(T.X), len(T.X) * len(T.Y)), task)
    return parts[0] if len(parts) == 1 else xp.concatenate(parts)


def mmd2_exact(T, unbiased):
    """(value as a 0-d float64 array, dX) of MMD² with the exact kernel: see gaussian.mmd2."""
    xp, s = T.xp, T.sigmas
    n, m, S = len(T.X), len(T.Y), len(s)
    a = 1 / (n * (n - 1)) if unbiased else 1 / n ** 2
    c = 1 / (m * (m - 1)) if unbiased else 1 / m ** 2
    b = 1 / (n * m)
    inv_s2 = np.array([1 / v ** 2 for v in s])
    dX = xp.empty_like(T.X)

    def x_task(span):  # rows I of X against all of X and Y: Σ Kxx, Σ Kxy, and dX_I
        lo, hi = span
        A = T.rows("X", lo, hi, "rows")
        vsum = 0
        acc = None
        sums = {}
        for which, size, coef in (("X", n, -2 * a), ("Y", m, 2 * b)):
            sums[which] = 0
            for clo, chi in spans(size, T.C):
                G, cols = T.gram(A, which, clo, chi)
                diag = lo - clo if which == "X" and clo <= lo < chi else None
                ksum, wsum = T.fused(T.xx[lo:hi], (T.xx if which == "X" else T.yy)[clo:chi], G, s,
                                     coef * inv_s2, diag=diag)
                sums[which] = sums[which] + ksum.sum()
                vsum = vsum + wsum
                if acc is None:
                    acc = xp.matmul(G, cols, out=T.buffer("acc", A.shape))
                else:
                    acc += xp.matmul(G, cols, out=T.buffer("tmp", A.shape))
        xp.multiply(A, vsum.astype(T.dtype)[:, None], out=dX[lo:hi])
        dX[lo:hi] -= acc
        return sums["X"], sums["Y"]

    def y_task(span):  # rows I of Y against the columns of Y after them: Σ_{i<j} Kyy
        lo, hi = span
        A = T.rows("Y", lo, hi, "rows")
        total = 0
        for clo, chi in spans(m, T.C):
            if chi <= lo:
                continue
            G, _ = T.gram(A, "Y", clo, chi)
            diag = lo - clo if clo <= lo < chi else None
            ksum, _ = T.fused(T.yy[lo:hi], T.yy[clo:chi], G, s, None, diag=diag, upper=diag is not None,
                              write=False)
            total = total + ksum.sum()
        return total

    x_spans = T.blocks(n, n * (n + m) + m * m / 2)
    tasks = [(x_task, span) for span in x_spans] + [(y_task, span) for span in spans(m, T.R)]
    results = T.run(tasks, lambda t: t[0](t[1]))
    kxx = sum(r[0] for r in results[:len(x_spans)])
    kxy = sum(r[1] for r in results[:len(x_spans)])
    kyy = 2 * sum(results[len(x_spans):]) + m * S  # the diagonal: k(y, y) = S exactly
    u = 1 if unbiased else 0
    value = a * (kxx - u * n * S) + c * (kyy - u * m * S) - 2 * b * kxy
    return xp.asarray(value, dtype=np.float64), dX


def kernel_matrix(X, Y, sigmas, fns, name):
    """K (n, m) itself: the rows centred once (no tiles: the matrix is the output), one matmul
    with BLAS's own threads, then the fused pass in place, over blocks of rows on the worker
    threads when the exps are worth splitting."""
    xp, (fused, centre) = _backend.xp_of(X, Y), fns
    n, m = len(X), len(Y)
    Z = _buffer(xp, "Z", (n + m, X.shape[1]), X.dtype)
    _, zz = centre(X, Y, Z)
    check_norms(zz, X.dtype, name)
    K = xp.empty((n, m), X.dtype)
    xp.matmul(Z[:n], Z[n:].T, out=K)

    def task(span):
        lo, hi = span
        fused(zz[lo:hi], zz[n:], K[lo:hi], sigmas, None)

    if xp is np and threads.workers() > 1 and n * m * len(sigmas) >= PARALLEL_MIN_EXPS:
        list(threads.pool().map(task, spans(n, -(-n // (4 * threads.workers())))))
    else:
        task((0, n))
    return K
