"""The Gaussian kernel, its sums, MMD² and a two-sample test (installed as minigan.kernels, from
the folder kernels/)."""
from .gaussian import default_sigmas, gaussian_kernel_matrix, gaussian_kernel_sum, median_sigma, mmd2

__all__ = ["gaussian_kernel_matrix", "gaussian_kernel_sum", "mmd2", "median_sigma", "default_sigmas"]
