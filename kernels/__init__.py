"""The Gaussian kernel, its sums, MMD² and a two-sample test (installed as minigan.kernels, from
the folder kernels/)."""
from .gaussian import default_sigmas, gaussian_kernel_matrix, gaussian_kernel_sum, median_sigma, mmd2
from .two_sample import MMDTest, mmd_test

__all__ = ["gaussian_kernel_matrix", "gaussian_kernel_sum", "mmd2", "mmd_test", "MMDTest", "median_sigma",
           "default_sigmas"]
