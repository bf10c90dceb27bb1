"""minigan: a GAN engine on NumPy and CuPy with hand-written forward and backward passes."""
__version__ = "0.2.0"
