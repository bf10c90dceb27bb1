"""im2col and col2im on the CPU, compiled by numba. Their equations and layout are those of
im2col / col2im in minigan/layers/conv.py, whose strided slices define them, run on CuPy, and
are checked equal to these loops in tests/test_conv.py.

Why a compiled loop: NumPy runs each of the k*k slice copies as one short inner loop per
output row (Wo elements, stride s), so for the DCGAN's 5x5 stride-2 layers the copies cost
more than the matmuls around them. One pass here moves the same bytes 1.7-4.4x faster
(the DCGAN's stride-2 layers at batch 64).

Why one compiled pair per (stride, Wo) for short rows: the innermost loop runs over one
output row, Wo elements (7 and 14 in the DCGAN). With Wo and the stride as runtime values,
LLVM vectorises that loop for long rows and sends a short row through its scalar remainder
loop; with them as compile-time constants (closure variables) it unrolls the row into a few
vector instructions, and the DCGAN's stride-2 copies run 1.5-1.75x faster. Rows of
SHORT_ROW elements or more keep both as runtime values: there the constant versions were up
to 1.5x slower (col2im at stride 2). Each pair is compiled once per process, a few tenths
of a second (about 2 s for the DCGAN's pairs), and tests/test_conv.py checks both kinds
against the slices.

Why no disk cache (cache=True): numba's cache index is read, extended and written back
without a lock, so two processes compiling different pairs at once can leave an index entry
that points at the other pair's machine code. Seen here: a later process then failed with
"NRT_adapt_ndarray_to_python: 'descr' is NULL", and a row-length mix-up would read past the
arrays (numba/numba#10128 is the same race for gufuncs). Two trainings started from one
checkout are an ordinary thing to do; a few seconds of compiling is the price.

Why no parallel loop inside: these run between OpenBLAS matmuls, whose worker threads keep
spinning for a while after each call; a parallel region then fought them for the cores and was
slower than this serial loop in the DCGAN step (benchmarks/dcgan_step.py). The convolutions
instead run a span of the batch per worker thread, each span's matmuls with one BLAS thread
and these loops without the GIL (minigan/layers/conv.py, minigan.kernels.threads).
"""
import functools

import numba
import numpy as np


SHORT_ROW = 16  # rows shorter than this (in elements) get loops compiled for their length


@functools.cache
def _compiled(fixed_s, fixed_Wo):
    """The im2col / col2im loops with the stride and the row length Wo compiled in, or, where
    fixed_s and fixed_Wo are 0, read at run time (from the argument s and from col's shape)."""

    @numba.njit(nogil=True)  # conv layers run them on worker threads (minigan.kernels.threads)
    def _im2col(x, k, s, p, col):
        s = fixed_s if fixed_s else s  # fixed_s, fixed_Wo are compile-time constants: no branch is left
        Wo = fixed_Wo if fixed_Wo else col.shape[5]
        N, C, H, W = x.shape
        Ho = col.shape[4]
        for c in range(C):
            for i in range(k):
                for j in range(k):
                    for n in range(N):
                        for ho in range(Ho):
                            h = i + s * ho - p
                            for wo in range(Wo):
                                w = j + s * wo - p
                                inside = 0 <= h < H and 0 <= w < W
                                col[c, i, j, n, ho, wo] = x[n, c, h, w] if inside else 0
        return col

    @numba.njit(nogil=True)
    def _col2im(col, s, p, x):
        s = fixed_s if fixed_s else s
        Wo = fixed_Wo if fixed_Wo else col.shape[5]
        C, k, _, N, Ho, _ = col.shape
        H, W = x.shape[2], x.shape[3]
        for c in range(C):
            x[:, c] = 0
            for i in range(k):
                for j in range(k):
                    for n in range(N):
                        for ho in range(Ho):
                            h = i + s * ho - p
                            if 0 <= h < H:
                                for wo in range(Wo):
                                    w = j + s * wo - p
                                    if 0 <= w < W:
                                        x[n, c, h, w] += col[c, i, j, n, ho, wo]
        return x

    return _im2col, _col2im


def _loops(stride, Wo):
    """The (im2col, col2im) pair for this stride and row length."""
    return _compiled(stride, Wo) if Wo < SHORT_ROW else _compiled(0, 0)


def im2col(x, kernel_size, stride, padding, col):
    """x: (N, C, H, W) NumPy -> col: (C, k, k, N, Ho, Wo), written in place and returned."""
    _im2col, _ = _loops(stride, col.shape[5])
    return _im2col(np.ascontiguousarray(x), kernel_size, stride, padding, col)


def col2im(col, stride, padding, x):
    """col: (C, k, k, N, Ho, Wo) NumPy -> x: (N, C, H, W), C-contiguous, written in place and returned."""
    _, _col2im = _loops(stride, col.shape[5])
    return _col2im(np.ascontiguousarray(col), stride, padding, x)
