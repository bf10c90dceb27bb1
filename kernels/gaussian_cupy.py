"""The fused pass of the Gaussian kernel on the GPU: one CuPy elementwise kernel (as gaussian.fused_numpy).

    D = max(xx_i + yy_j − 2 G_ij, 0);  e_s = exp(−D / (2σ_s²));  K_ij = Σ_s e_s;  W_ij = Σ_s scale_s e_s

The kernel writes W over G and K beside it; the row sums are two CuPy reductions. Entries
outside the strict upper triangle of a symmetric block (upper) count 0.
"""
import functools

from minigan import backend

_SOURCE = """
const int row = i / m, col = i % m;
T d = xx + yy - (T)2 * G;
d = d > (T)0 ? d : (T)0;
if (has_diag && col == row + off) d = 0;
T k = 0, w = 0;
if (!upper || col > row + off) {
    for (int s = 0; s < n_sigmas; ++s) {
        T e = exp(d * neg_inv_2s2[s]);
        k += e;
        w += e * scale[s];
    }
}
K = k;
if (write) G = w;
"""
_kernel = None


@functools.lru_cache(maxsize=64)
def _constants(values, dtype):
    """The bandwidths' constants on the device, uploaded once (a copy to the device waits for it)."""
    return backend.get("cupy").asarray(values, dtype=dtype)


def fused_cupy(xx, yy, G, sigmas, scale=None, *, diag=None, upper=False, write=True):
    """As gaussian.fused_numpy: returns (row sums of K, row sums of W), float64; W over G when write."""
    global _kernel
    cp = backend.get("cupy")
    if _kernel is None:
        _kernel = cp.ElementwiseKernel(
            "T xx, T yy, raw T neg_inv_2s2, raw T scale, int32 n_sigmas, int32 m, int32 has_diag, int32 off, "
            "int32 upper, int32 write", "T G, T K", _SOURCE, "minigan_gaussian_tile")
    scale = [1.0] * len(sigmas) if scale is None else scale
    K = cp.empty_like(G)
    _kernel(xx[:, None], yy[None, :], _constants(tuple(-0.5 / s ** 2 for s in sigmas), G.dtype.str),
            _constants(tuple(float(v) for v in scale), G.dtype.str), len(sigmas), G.shape[1],
            diag is not None, diag or 0, upper, write, G, K)
    ksum = K.sum(axis=1, dtype=cp.float64)
    if not write:
        return ksum, None
    return ksum, G.sum(axis=1, dtype=cp.float64)
