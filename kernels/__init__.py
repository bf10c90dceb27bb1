"""Gaussian-kernel matrix and MMD² (installed as minigan.kernels, from the folder kernels/)."""
from .gaussian import default_sigmas, gaussian_kernel_matrix, median_sigma, mmd2

__all__ = ["gaussian_kernel_matrix", "mmd2", "median_sigma", "default_sigmas"]
