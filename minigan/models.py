"""Model builders. Each returns a Sequential drawn from an explicit seed, on the host in float32."""
from . import init
from .layers import (BatchNorm, Conv2D, ConvTranspose2D, Dense, Flatten, LeakyReLU, ReLU, Reshape,
                     Sequential, Sigmoid, Tanh)


def dcgan_generator(nz=100, *, seed=0):
    """z (N, nz) -> image (N, 1, 28, 28) in [-1, 1]:  7x7x256 -> 14x14x128 -> 28x28x64 -> 28x28x1.

    Layers before a BatchNorm have no bias (BatchNorm's beta takes its place). Weights are
    drawn as in PyTorch's DCGAN example: N(0, 0.02), BatchNorm gamma ~ N(1, 0.02).
    """
    rng = init.as_generator(seed)
    up = dict(stride=2, padding=2, output_padding=1, bias=False, rng=rng)
    G = Sequential(
        Dense(nz, 7 * 7 * 256, bias=False, rng=rng), BatchNorm(7 * 7 * 256), LeakyReLU(0.2),
        Reshape((256, 7, 7)),
        ConvTranspose2D(256, 128, 5, **up), BatchNorm(128), LeakyReLU(0.2),
        ConvTranspose2D(128, 64, 5, **up), BatchNorm(64), LeakyReLU(0.2),
        ConvTranspose2D(64, 1, 5, padding=2, rng=rng), Tanh())
    return init.init_dcgan(G, rng)


def dcgan_discriminator(*, seed=1):
    """image (N, 1, 28, 28) -> logit (N, 1):  28 -> 14x14x64 -> 7x7x128 -> 1."""
    rng = init.as_generator(seed)
    D = Sequential(
        Conv2D(1, 64, 5, stride=2, padding=2, rng=rng), LeakyReLU(0.2),
        Conv2D(64, 128, 5, stride=2, padding=2, bias=False, rng=rng), BatchNorm(128), LeakyReLU(0.2),
        Flatten(), Dense(7 * 7 * 128, 1, rng=rng))
    return init.init_dcgan(D, rng)


def mlp_generator(nz=2, out_features=2, *, hidden=128, depth=3, out_shape=None, tanh=False, seed=0):
    """z (N, nz) -> (N, out_features) (or (N, *out_shape)): `depth` ReLU layers of `hidden` units.
    For 2-D mixtures (linear output) and quick image runs (tanh=True, out_shape=(1, 28, 28))."""
    rng = init.as_generator(seed)
    layers, width = [], nz
    for _ in range(depth):
        layers += [Dense(width, hidden, rng=rng), ReLU()]
        width = hidden
    layers.append(Dense(width, out_features, rng=rng))
    if tanh:
        layers.append(Tanh())
    if out_shape is not None:
        layers.append(Reshape(out_shape))
    return Sequential(*layers)


def mlp_discriminator(in_features=2, *, hidden=128, depth=3, seed=1):
    """x (N, ...) -> logit (N, 1): Flatten, then `depth` LeakyReLU(0.2) layers of `hidden` units."""
    rng = init.as_generator(seed)
    layers, width = [Flatten()], in_features
    for _ in range(depth):
        layers += [Dense(width, hidden, rng=rng), LeakyReLU(0.2)]
        width = hidden
    layers.append(Dense(width, 1, rng=rng))
    return Sequential(*layers)


def autoencoder(code_size=32, *, hidden=256, seed=0):
    """784 -> hidden -> code -> hidden -> 784 (sigmoid), on images (N, 1, 28, 28) in [0, 1]."""
    rng = init.as_generator(seed)
    return Sequential(
        Flatten(), Dense(784, hidden, rng=rng), ReLU(), Dense(hidden, code_size, rng=rng),
        Dense(code_size, hidden, rng=rng), ReLU(), Dense(hidden, 784, rng=rng), Sigmoid(),
        Reshape((1, 28, 28)))
