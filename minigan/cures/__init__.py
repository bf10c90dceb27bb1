"""The cures for mode collapse and instability: one file each, one line each in CURES below.

A cure is a class (minigan/cures/base.py says what one may add to a run). Its Options are both
the demos' flags (--mmd-weight) and GANTrainer's keywords (mmd_weight=), checked by the same
code; an instance exists only while its options switch it on. docs/own_cure.md writes one.
The formulas, recipes and published numbers are in docs/cures.md.
"""
import difflib

import numpy as np

from .base import BadOption, Cure, Option
from .d_mmd import DiscriminatorMMD
from .diffaug import DiffAugment
from .ebgan import EBGAN
from .ema import EMA
from .feature_matching import FeatureMatching
from .lecam import LeCam
from .loss import Loss
from .lr_decay import LRDecay
from .madgan import MADGAN
from .mbdisc import MinibatchDiscrimination
from .mbstd import MinibatchStdDev
from .mmd import MMD
from .mrgan import MRGAN
from .pack import Pack
from .penalty import GradientPenalty
from .spectral import SpectralNorm
from .ttur import TTUR
from .unroll import Unroll

# The order is the order of the hooks. Two places depend on it: Unroll's g_extra comes before
# MRGAN's (it needs G's cache from the step's own fake batch, which MRGAN's pass replaces), and
# GradientPenalty's attach comes last (a lazy penalty rescales D's Adam; MRGAN's second D takes
# D's rate before that).
__all__ = ["CURES", "BadOption", "Cure", "Option", "options", "resolve", "build", "network_options", "add_flags",
           "from_args"]

CURES = [Loss, TTUR, SpectralNorm, DiffAugment, Pack, MinibatchStdDev, MinibatchDiscrimination, EMA, LeCam,
         FeatureMatching, MMD, DiscriminatorMMD, Unroll, MADGAN, MRGAN, EBGAN, GradientPenalty, LRDecay]


def options():
    """{key: Option} of every cure, in the registry's order."""
    return {o.key: o for cls in CURES for o in cls.options}


def resolve(given):
    """Every cure option's value: `given` (keywords of GANTrainer) over the defaults, each
    checked. BadOption for a value a cure cannot use or a keyword no cure has."""
    known = options()
    unknown = sorted(set(given) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(known) + ["lr", "beta1", "nz", "seed"], n=1)
        raise BadOption(f"unexpected option {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                        + f"; the cures' options are {', '.join(known)}")
    values = {key: _plain(given.get(key, o.default)) for key, o in known.items()}
    for key, o in known.items():
        o.validate(values[key])
    return values


def _plain(value):
    """Python's own numbers for NumPy's (a checkpoint records the options as JSON)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


def build(values):
    """The cures that `values` switch on, in the registry's order; exactly one of them defines the
    adversarial terms (the plain loss gives way to MAD-GAN or EBGAN when left at its default)."""
    on = [cls(values) for cls in CURES if cls.on(values)]
    owners = [c for c in on if c.adversarial]
    if len(owners) > 1:
        plain = next((c for c in owners if isinstance(c, Loss)), None)
        if plain is not None and plain.at_default():
            on.remove(plain)
            owners.remove(plain)
    if len(owners) > 1:
        names = " and ".join(c.name for c in owners)
        raise BadOption(f"{names} each define D's and G's adversarial losses; choose one")
    return on


def network_options(values):
    """Keyword arguments for minigan.models' builders from the cures that `values` switch on:
    (generator's, discriminator's, names of further networks)."""
    cures = build(values)
    g, d, extra = {}, {}, []
    for c in cures:
        g.update(c.generator())
        d.update(c.discriminator())
        extra += [n for n in c.networks if n not in extra]
    return g, d, extra


# ---- the demos' flags ------------------------------------------------------------------------
def add_flags(parser):
    """Every cure's flags (the same names in every demo), in one group."""
    group = parser.add_argument_group("cures for mode collapse and instability (docs/cures.md)")
    for o in options().values():
        if o.cli:
            o.add_to(group)
    group.add_argument("--feature-layer", metavar="I", type=int,
                       help="the index of D's layer whose output is 'D's features' for feature matching and "
                            "feature MMD (see --trace). Default: the last hidden layer")
    return group


def from_args(parser, args, *, batch_size, shape):
    """The cure options of parsed flags, checked — each value, the cures against each other and
    against the batch and a sample's shape — with every refusal through parser.error (one line,
    exit 2) before any data is loaded. Returns the options (GANTrainer's keywords)."""
    values = {key: getattr(args, key) for key, o in options().items() if o.cli}
    try:
        resolved = resolve(values)
        for cure in build(resolved):
            cure.check_data(batch_size, shape)
    except BadOption as e:
        parser.error(e.flag_message)
    return values
