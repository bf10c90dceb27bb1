"""Weight initialisers, each drawn from an explicit generator.

`rng` is a seed (int) or a ``numpy.random.Generator``; weights are drawn on the host in
float32 and moved to a backend by the trainer (so one seed gives the same weights on
NumPy and CuPy).
"""
import numpy as np


def as_generator(rng):
    """A numpy Generator from a seed, a Generator, or None (a fresh, unseeded one)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng: expected an int seed or numpy.random.Generator, got {type(rng).__name__}")


def uniform_fan_in(shape, fan_in, rng, dtype=np.float32):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/Conv weights and biases."""
    bound = 1.0 / np.sqrt(fan_in)
    return as_generator(rng).uniform(-bound, bound, size=shape).astype(dtype)


def dcgan_normal(shape, rng, *, mean=0.0, std=0.02, dtype=np.float32):
    """N(mean, std^2), the DCGAN paper's initialiser (std 0.02)."""
    return as_generator(rng).normal(mean, std, size=shape).astype(dtype)


def he_normal(shape, fan_in, rng, dtype=np.float32):
    """N(0, 2/fan_in): He et al. 2015, for ReLU-family layers."""
    return as_generator(rng).normal(0.0, np.sqrt(2.0 / fan_in), size=shape).astype(dtype)


def glorot_uniform(shape, fan_in, fan_out, rng, dtype=np.float32):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): Glorot & Bengio 2010."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return as_generator(rng).uniform(-a, a, size=shape).astype(dtype)


def init_dcgan(model, rng):
    """Re-initialise a model as PyTorch's DCGAN example does (its `weights_init`):
    every weight W ~ N(0, 0.02), BatchNorm gamma ~ N(1, 0.02) and beta = 0; biases kept."""
    rng = as_generator(rng)
    for layer in model.leaves():
        p = layer.params
        if "W" in p:
            p["W"] = dcgan_normal(p["W"].shape, rng, dtype=p["W"].dtype)
        if "gamma" in p:
            p["gamma"] = dcgan_normal(p["gamma"].shape, rng, mean=1.0, dtype=p["gamma"].dtype)
            p["beta"] = np.zeros_like(p["beta"])
    return model
