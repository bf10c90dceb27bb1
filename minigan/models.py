"""Model builders. Each returns a Sequential drawn from an explicit seed, on the host in float32."""
from . import init
from .layers import (BatchNorm, Conv2D, ConvTranspose2D, Dense, DiffAugment, Flatten, LeakyReLU,
                     MinibatchDiscrimination, MinibatchStdDev, Pack, ReLU, Reshape, Sequential, Sigmoid,
                     SpectralNorm, Tanh)


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


def dcgan_discriminator(*, seed=1, sn=False, diffaug=None, mbstd=0, mbdisc=0, pack=1):
    """image (N, 1, 28, 28) -> logit (N/pack, 1):  28 -> 14x14x64 -> 7x7x128 -> 1.

    The cures that are layers of D, each optional: DiffAugment(diffaug) and Pack(pack) first;
    sn: every Conv2D and Dense wrapped in SpectralNorm and the BatchNorm dropped (SN-DCGAN);
    mbstd: MinibatchStdDev(group mbstd) before the flatten; mbdisc: MinibatchDiscrimination
    with mbdisc kernels before the last Dense.
    """
    rng = init.as_generator(seed)
    wrap = (lambda layer: SpectralNorm(layer, rng=rng)) if sn else (lambda layer: layer)
    layers = [DiffAugment(diffaug, rng=int(rng.integers(2 ** 63)))] if diffaug else []  # its own generator
    layers += [Pack(pack)] if pack > 1 else []
    layers += [Conv2D(pack, 64, 5, stride=2, padding=2, rng=rng), LeakyReLU(0.2),
               Conv2D(64, 128, 5, stride=2, padding=2, bias=sn, rng=rng)]
    layers += [] if sn else [BatchNorm(128)]
    layers += [LeakyReLU(0.2)] + ([MinibatchStdDev(mbstd)] if mbstd else []) + [Flatten()]
    width = (128 + (1 if mbstd else 0)) * 7 * 7
    layers += [MinibatchDiscrimination(width, mbdisc, 5, rng=rng)] if mbdisc else []
    layers.append(Dense(width + mbdisc, 1, rng=rng))
    init.init_dcgan(Sequential(*layers), rng)
    return Sequential(*[wrap(layer) if isinstance(layer, (Conv2D, Dense)) else layer for layer in layers])


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


def mlp_discriminator(in_features=2, *, hidden=128, depth=3, seed=1, sn=False, diffaug=None, mbstd=0,
                      mbdisc=0, pack=1):
    """x (N, ...) -> logit (N/pack, 1): Flatten, then `depth` LeakyReLU(0.2) layers of `hidden` units.
    The same optional cures as dcgan_discriminator (Pack widens the first layer to pack·in_features;
    the minibatch layers sit after the last hidden layer); diffaug needs images, so it is refused."""
    if diffaug:
        raise ValueError("mlp_discriminator: DiffAugment needs images (N, C, H, W); these samples are vectors")
    rng = init.as_generator(seed)
    wrap = (lambda layer: SpectralNorm(layer, rng=rng)) if sn else (lambda layer: layer)
    layers, width = [Flatten()] + ([Pack(pack)] if pack > 1 else []), in_features * pack
    for _ in range(depth):
        layers += [wrap(Dense(width, hidden, rng=rng)), LeakyReLU(0.2)]
        width = hidden
    if mbstd:
        layers.append(MinibatchStdDev(mbstd))
        width += 1
    if mbdisc:
        layers.append(MinibatchDiscrimination(width, mbdisc, 5, rng=rng))
        width += mbdisc
    layers.append(wrap(Dense(width, 1, rng=rng)))
    return Sequential(*layers)


def autoencoder(code_size=32, *, hidden=256, seed=0):
    """784 -> hidden -> code -> hidden -> 784 (sigmoid), on images (N, 1, 28, 28) in [0, 1]."""
    rng = init.as_generator(seed)
    return Sequential(
        Flatten(), Dense(784, hidden, rng=rng), ReLU(), Dense(hidden, code_size, rng=rng),
        Dense(code_size, hidden, rng=rng), ReLU(), Dense(hidden, 784, rng=rng), Sigmoid(),
        Reshape((1, 28, 28)))


def load_generator(path, *, ema=True):
    """(G, meta, which) from a checkpoint: the DCGAN generator with the run's nz, holding the
    EMA copy's weights when the run kept one (and ema=True), else G's. which is "G_ema" or "G".
    A file that is not a checkpoint, or whose weights do not fit, is a CheckpointError."""
    from . import checkpoint

    arrays, meta = checkpoint.load_run(path)
    which = "G_ema" if ema and any(k.startswith("G_ema/") for k in arrays) else "G"
    state = checkpoint.subset(arrays, which)
    state.pop("t", None)  # the EMA's update count
    G = dcgan_generator(meta["config"]["nz"])
    try:
        G.load_state_dict(state)
    except ValueError as e:
        raise checkpoint.CheckpointError(f"{path}: its {which} does not fit the DCGAN generator with "
                                         f"nz={meta['config']['nz']} ({e})") from e
    return G, meta, which
