"""Model builders. Each returns a Sequential drawn from an explicit seed, on the host in float32."""
from . import init
from .layers import (BatchNorm, Conv2D, ConvTranspose2D, Dense, DiffAugment, Flatten, LeakyReLU,
                     MinibatchDiscrimination, MinibatchStdDev, Pack, ReLU, Reshape, Sequential, Sigmoid,
                     SpectralNorm, Tanh)
from .layers.containers import Energy, Heads
from .layers.tap import Tap


def channels(count, width):
    """The first layer's channel count in a DCGAN of the given width (1: as published; 0.5: half);
    the later layers' follow from it, as in the published network."""
    return max(1, round(count * width))


def dcgan_generator(nz=100, *, seed=0, heads=1, width=1.0):
    """z (N, nz) -> image (N, 1, 28, 28) in [-1, 1]:  7x7x256 -> 14x14x128 -> 28x28x64 -> 28x28x1.

    Layers before a BatchNorm have no bias (BatchNorm's beta takes its place). Weights are
    drawn as in PyTorch's DCGAN example: N(0, 0.02), BatchNorm gamma ~ N(1, 0.02).
    heads > 1: MAD-GAN's generators, sharing every layer but the last convolution (Heads:
    sample n comes from generator n mod heads). width scales every channel count (0.5: 128 ->
    64 -> 32): the same layers, narrower.
    """
    rng = init.as_generator(seed)
    c1 = channels(256, width)
    c2, c3 = max(1, c1 // 2), max(1, c1 // 4)  # so that the first layer's width says them all
    up = dict(stride=2, padding=2, output_padding=1, bias=False, rng=rng)
    trunk = [Dense(nz, 7 * 7 * c1, bias=False, rng=rng), BatchNorm(7 * 7 * c1), LeakyReLU(0.2),
             Reshape((c1, 7, 7)),
             ConvTranspose2D(c1, c2, 5, **up), BatchNorm(c2), LeakyReLU(0.2),
             ConvTranspose2D(c2, c3, 5, **up), BatchNorm(c3), LeakyReLU(0.2)]
    last = [ConvTranspose2D(c3, 1, 5, padding=2, rng=rng) for _ in range(heads)]  # drawn after the trunk
    G = Sequential(*trunk, last[0] if heads == 1 else Heads(*last), Tanh())
    return init.init_dcgan(G, rng)


def dcgan_discriminator(*, seed=1, sn=False, diffaug=None, mbstd=0, mbdisc=0, pack=1, outputs=1, energy=False,
                        width=1.0):
    """image (N, 1, 28, 28) -> logit (N/pack, outputs):  28 -> 14x14x64 -> 7x7x128 -> outputs
    (channel counts times width).

    The cures that are layers of D, each optional: DiffAugment(diffaug) and Pack(pack) first;
    sn: every Conv2D and Dense wrapped in SpectralNorm and the BatchNorm dropped (SN-DCGAN);
    mbstd: MinibatchStdDev(group mbstd) before the flatten; mbdisc: MinibatchDiscrimination
    with mbdisc kernels before the last Dense. outputs: the head's width (MAD-GAN: k + 1).
    energy: EBGAN's discriminator instead, the energy of conv_autoencoder (ebgan_discriminator).
    """
    if energy:
        return ebgan_discriminator(seed=seed)
    rng = init.as_generator(seed)
    wrap = (lambda layer: SpectralNorm(layer, rng=rng)) if sn else (lambda layer: layer)
    layers = [DiffAugment(diffaug, rng=int(rng.integers(2 ** 63)))] if diffaug else []  # its own generator
    layers += [Pack(pack)] if pack > 1 else []
    c1 = channels(64, width)
    c2 = 2 * c1
    layers += [Conv2D(pack, c1, 5, stride=2, padding=2, rng=rng), LeakyReLU(0.2),
               Conv2D(c1, c2, 5, stride=2, padding=2, bias=sn, rng=rng)]
    layers += [] if sn else [BatchNorm(c2)]
    layers += [LeakyReLU(0.2)] + ([MinibatchStdDev(mbstd)] if mbstd else []) + [Flatten()]
    features = (c2 + (1 if mbstd else 0)) * 7 * 7
    layers += [MinibatchDiscrimination(features, mbdisc, 5, rng=rng)] if mbdisc else []
    layers.append(Dense(features + mbdisc, outputs, rng=rng))
    init.init_dcgan(Sequential(*layers), rng)
    return Sequential(*[wrap(layer) if isinstance(layer, (Conv2D, Dense)) else layer for layer in layers])


def mlp_generator(nz=2, out_features=2, *, hidden=128, depth=3, out_shape=None, tanh=False, seed=0, heads=1):
    """z (N, nz) -> (N, out_features) (or (N, *out_shape)): `depth` ReLU layers of `hidden` units.
    For 2-D mixtures (linear output) and quick image runs (tanh=True, out_shape=(1, 28, 28)).
    heads > 1: MAD-GAN's generators, sharing all but the last layer (Heads)."""
    rng = init.as_generator(seed)
    layers, width = [], nz
    for _ in range(depth):
        layers += [Dense(width, hidden, rng=rng), ReLU()]
        width = hidden
    last = [Dense(width, out_features, rng=rng) for _ in range(heads)]
    layers.append(last[0] if heads == 1 else Heads(*last))
    if tanh:
        layers.append(Tanh())
    if out_shape is not None:
        layers.append(Reshape(out_shape))
    return Sequential(*layers)


def mlp_discriminator(in_features=2, *, hidden=128, depth=3, seed=1, sn=False, diffaug=None, mbstd=0,
                      mbdisc=0, pack=1, outputs=1, energy=False):
    """x (N, ...) -> logit (N/pack, outputs): Flatten, then `depth` LeakyReLU(0.2) layers of `hidden`
    units. The same optional cures as dcgan_discriminator (Pack widens the first layer to
    pack·in_features; the minibatch layers sit after the last hidden layer); diffaug needs
    images, so it is refused. energy: EBGAN's discriminator, the energy of mlp_autoencoder."""
    if energy:
        return Energy(mlp_autoencoder(in_features, hidden=hidden, seed=seed))
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
    layers.append(wrap(Dense(width, outputs, rng=rng)))
    return Sequential(*layers)


def autoencoder(code_size=32, *, hidden=256, seed=0):
    """784 -> hidden -> code -> hidden -> 784 (sigmoid), on images (N, 1, 28, 28) in [0, 1]."""
    rng = init.as_generator(seed)
    return Sequential(
        Flatten(), Dense(784, hidden, rng=rng), ReLU(), Dense(hidden, code_size, rng=rng),
        Dense(code_size, hidden, rng=rng), ReLU(), Dense(hidden, 784, rng=rng), Sigmoid(),
        Reshape((1, 28, 28)))


def conv_autoencoder(code_size=32, *, seed=0, out="sigmoid"):
    """28x28 -> 16x14x14 -> 32x7x7 -> code -> 32x7x7 -> 16x14x14 -> 28x28, the last layer's
    output through a Sigmoid (images in [0, 1]) or a Tanh (out="tanh": images in [-1, 1]).
    The code layer (Dense(32*49, code_size)) is wrapped in a Tap named "features"."""
    rng = init.as_generator(seed)
    return Sequential(
        Conv2D(1, 16, 3, stride=2, padding=1, rng=rng), ReLU(), Conv2D(16, 32, 3, stride=2, padding=1, rng=rng),
        ReLU(), Flatten(), Tap(Dense(32 * 49, code_size, rng=rng), "features"), Dense(code_size, 32 * 49, rng=rng),
        ReLU(), Reshape((32, 7, 7)), ConvTranspose2D(32, 16, 3, stride=2, padding=1, output_padding=1, rng=rng),
        ReLU(), ConvTranspose2D(16, 1, 3, stride=2, padding=1, output_padding=1, rng=rng),
        Tanh() if out == "tanh" else Sigmoid())


def mlp_autoencoder(in_features=2, *, hidden=128, code_size=2, seed=0):
    """x (N, in_features) -> code (N, code_size) -> (N, in_features): LeakyReLU(0.2) layers of
    `hidden` units; the code layer is wrapped in a Tap named "features"."""
    rng = init.as_generator(seed)
    return Sequential(Dense(in_features, hidden, rng=rng), LeakyReLU(0.2),
                      Tap(Dense(hidden, code_size, rng=rng), "features"), Dense(code_size, hidden, rng=rng),
                      LeakyReLU(0.2), Dense(hidden, in_features, rng=rng))


def ebgan_discriminator(*, code_size=32, seed=1):
    """image (N, 1, 28, 28) -> energy (N, 1): EBGAN's D, the reconstruction error (Energy) of
    conv_autoencoder with a Tanh output (images in [-1, 1]); its code is D's "features"."""
    return Energy(conv_autoencoder(code_size, seed=seed, out="tanh"))


def dcgan_encoder(nz=100, *, seed=2, width=1.0):
    """image (N, 1, 28, 28) -> code (N, nz): D's trunk (two strided convolutions) and a Dense to
    nz: MRGAN's encoder E."""
    rng = init.as_generator(seed)
    c1 = channels(64, width)
    c2 = 2 * c1
    E = Sequential(Conv2D(1, c1, 5, stride=2, padding=2, rng=rng), LeakyReLU(0.2),
                   Conv2D(c1, c2, 5, stride=2, padding=2, bias=False, rng=rng), BatchNorm(c2), LeakyReLU(0.2),
                   Flatten(), Dense(c2 * 7 * 7, nz, rng=rng))
    return init.init_dcgan(E, rng)


def mlp_encoder(in_features=2, nz=2, *, hidden=128, depth=3, seed=2):
    """x (N, in_features) -> code (N, nz): `depth` LeakyReLU(0.2) layers of `hidden` units."""
    rng = init.as_generator(seed)
    layers, width = [], in_features
    for _ in range(depth):
        layers += [Dense(width, hidden, rng=rng), LeakyReLU(0.2)]
        width = hidden
    return Sequential(*layers, Dense(width, nz, rng=rng))


def build_networks(kind, *, nz, seed=0, hidden=128, width=1.0, options=None):
    """(G, D, {name: network}) for a GAN with the cures `options` switch on (GANTrainer's
    keywords): the DCGAN on 28x28 images (kind="dcgan", its channel counts times `width`, G
    seeded with `seed`, D with seed + 1) or the MLP GAN on 2-D points (kind="mlp", `hidden`
    units, D seeded with seed + 1000). Each cure adds its keyword arguments to the builders
    (minigan.cures.network_options)."""
    from .cures import network_options, resolve

    g_kw, d_kw, extra = network_options(resolve(options or {}))
    if kind == "dcgan":
        G = dcgan_generator(nz, seed=seed, width=width, **g_kw)
        D = dcgan_discriminator(seed=seed + 1, width=width, **d_kw)
    elif kind == "mlp":
        G = mlp_generator(nz, 2, hidden=hidden, depth=3, seed=seed, **g_kw)
        D = mlp_discriminator(2, hidden=hidden, depth=3, seed=seed + 1000, **d_kw)
    else:
        raise ValueError(f"build_networks: expected kind 'dcgan' or 'mlp', got {kind!r}")
    return G, D, {name: NETWORKS[name](kind, nz=nz, seed=seed + 2, hidden=hidden, width=width) for name in extra}


NETWORKS = {  # name -> builder(kind, nz=, seed=, hidden=, width=) of the networks cures add
    "E": lambda kind, nz, seed, hidden, width: (dcgan_encoder(nz, seed=seed, width=width) if kind == "dcgan"
                                                else mlp_encoder(2, nz, hidden=hidden, seed=seed)),
    "D2": lambda kind, nz, seed, hidden, width: (dcgan_discriminator(seed=seed + 1, width=width) if kind == "dcgan"
                                                 else mlp_discriminator(2, hidden=hidden, seed=seed + 1)),
}


def load_generator(path, *, ema=True):
    """(G, meta, which) from a checkpoint: the DCGAN generator with the run's nz, holding the
    EMA copy's weights when the run kept one (and ema=True), else G's. which is "G_ema" or "G".
    A file that is not a checkpoint, or whose weights do not fit, is a CheckpointError."""
    from . import checkpoint

    arrays, meta = checkpoint.load_run(path)
    which = "G_ema" if ema and any(k.startswith("G_ema/") for k in arrays) else "G"
    state = checkpoint.subset(arrays, which)
    state.pop("t", None)  # the EMA's update count
    W = state.get("0.W")  # Dense(nz, 7·7·c1): c1 = 256 · width names every channel count
    width = W.shape[1] // (7 * 7) / 256 if getattr(W, "ndim", 0) == 2 else 1.0
    G = dcgan_generator(meta["config"]["nz"], heads=meta["config"].get("madgan") or 1, width=width)
    try:
        G.load_state_dict(state)
    except ValueError as e:
        raise checkpoint.CheckpointError(f"{path}: its {which} does not fit the DCGAN generator with "
                                         f"nz={meta['config']['nz']} ({e})") from e
    return G, meta, which
