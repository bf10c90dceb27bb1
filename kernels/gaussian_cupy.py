"""The fused pass of the Gaussian kernel on the GPU: one CuPy elementwise kernel.

    D = max(xx_i + yy_j − 2 G_ij, 0);   K_ij = Σ_s exp(−D / (2σ_s²));   Kw_ij = Σ_s exp(…) / σ_s²
"""
from minigan import backend

_SOURCE = """
T d = xx + yy - (T)2 * g;
d = d > (T)0 ? d : (T)0;
T k = 0, kw = 0;
for (int s = 0; s < n_sigmas; ++s) {
    T e = exp(d * neg_inv_2s2[s]);
    k += e;
    kw += e * inv_s2[s];
}
K = k;
Kw = kw;
"""
_kernel = None


def fused_cupy(xx, yy, G, sigmas, weighted):
    """As gaussian.fused_numpy: returns (K, Kw or None), in G's dtype."""
    global _kernel
    cp = backend.get("cupy")
    if _kernel is None:
        _kernel = cp.ElementwiseKernel(
            "T xx, T yy, T g, raw T neg_inv_2s2, raw T inv_s2, int32 n_sigmas", "T K, T Kw",
            _SOURCE, "minigan_gaussian_fused")
    s = cp.asarray(sigmas, dtype=cp.float64)
    K = cp.empty_like(G)
    Kw = cp.empty_like(G)
    _kernel(xx[:, None], yy[None, :], G, (-0.5 / s ** 2).astype(G.dtype), (1 / s ** 2).astype(G.dtype),
            len(s), K, Kw)
    return K, (Kw if weighted else None)
