"""The cures for mode collapse, as the trainer sees them, and the demos' flags for them.

A term returns (value, gradient) at one tap point; the trainer sums each tap's gradients and
runs one backward per pass (minigan/trainer.py):

    tap                 pass         terms (the flag that switches each on)
    d_real              D on real    adversarial D loss on s_r (--loss); LeCam (--lecam)
    d_fake              D on fake    adversarial D loss on s_f; LeCam
    d_fake_features     D on fake    −w·MMD²(f(G(z)), f(x)): D raises the kernel distance (--d-mmd-weight)
    g_fake              G's step     adversarial G loss on s_f
    g_fake_features     G's step     feature matching (--feature-matching); MMD² on D's features
                                     (--mmd-weight with --mmd-space features)
    g_fake_pixels       G's step     MMD² on pixels (--mmd-weight, --mmd-space pixels)

Layers in D (--diffaug, --pack, --sn, --mbstd, --mbdisc) are built by minigan.models; hooks
after the optimizer steps are EMA of G (--ema, minigan.optim.EMA) and LeCam's anchors.
"""
import math

import numpy as np

from . import losses


class Terms:
    """The terms of one run, by tap, built from the trainer's config; every option is checked
    here, before the trainer makes any state."""

    def __init__(self, config, D):
        c = config
        from .trainer import BadOption
        if c["loss"] not in losses.ADVERSARIAL:
            raise BadOption(f"GANTrainer: expected loss in {sorted(losses.ADVERSARIAL)}, got {c['loss']!r}")
        for name in ("lr_d", "lr_g"):
            if not (isinstance(c[name], (int, float)) and math.isfinite(c[name]) and c[name] > 0):
                raise BadOption(f"GANTrainer: expected {name} > 0 and finite, got {c[name]!r}")
        if not 0 <= c["beta1"] < 1:
            raise BadOption(f"GANTrainer: expected 0 <= beta1 < 1, got {c['beta1']!r}")
        for name in ("mmd_weight", "d_mmd_weight", "feature_matching", "lecam"):
            if not (math.isfinite(c[name]) and c[name] >= 0):
                raise BadOption(f"GANTrainer: expected {name} >= 0 and finite, got {c[name]!r}")
        for name, least in (("d_steps", 1), ("unroll", 0)):
            if not isinstance(c[name], (int, np.integer)) or c[name] < least:
                raise BadOption(f"GANTrainer: expected {name} to be an int >= {least}, got {c[name]!r}")
        if c["ema"] is not None and not 0 <= c["ema"] < 1:
            raise BadOption(f"GANTrainer: expected an EMA decay in [0, 1), got {c['ema']!r}")
        if c["mmd_space"] not in ("pixels", "features"):
            raise BadOption(f"GANTrainer: expected mmd_space 'pixels' or 'features', got {c['mmd_space']!r}")
        n = len(D.layers)
        f = c["feature_layer"]
        if not isinstance(f, (int, np.integer)) or not 0 <= f < n - 1:
            raise BadOption(f"GANTrainer: expected feature_layer to be the index of one of D's layers "
                             f"0..{n - 2} (not the last: D's head needs a layer), got {f!r}; D's layers: "
                             + ", ".join(f"{i} {type(layer).__name__}" for i, layer in enumerate(D.layers)))
        adv = losses.ADVERSARIAL[c["loss"]]
        self.lecam = losses.LeCam() if c["lecam"] else None
        self.mmd_sigmas, self.last_mmd = c["mmd_sigmas"], 0.0
        self.taps = {"d_real": [adv.d_real], "d_fake": [adv.d_fake], "d_fake_features": [],
                     "g_fake": [adv.g], "g_fake_features": [], "g_fake_pixels": []}
        if self.lecam:
            self.taps["d_real"].append(weighted(c["lecam"], self.lecam.real))
            self.taps["d_fake"].append(weighted(c["lecam"], self.lecam.fake))
        if c["d_mmd_weight"]:
            self.taps["d_fake_features"].append(weighted(-c["d_mmd_weight"], self.feature_mmd))
        if c["feature_matching"]:
            self.taps["g_fake_features"].append(weighted(c["feature_matching"], losses.feature_matching))
        if c["mmd_weight"]:
            tap = "g_fake_features" if c["mmd_space"] == "features" else "g_fake_pixels"
            mmd = self.feature_mmd if c["mmd_space"] == "features" else self.pixel_mmd
            self.taps[tap].append(weighted(c["mmd_weight"], mmd, keep=self))
        self.needs_real_features = bool(self.taps["g_fake_features"])

    def at(self, tap, *arrays):
        """Σ of the values and of the gradients of the terms at `tap`: (value, grad or None)."""
        value, grad = 0.0, None
        for term in self.taps[tap]:
            v, g = term(*arrays)
            value, grad = value + v, g if grad is None else grad + g
        return value, grad

    def pixel_mmd(self, fake, real):
        """MMD² on pixels, the bandwidths fixed at the run's start from the data (minigan.kernels)."""
        return losses.mmd(fake, real, self.mmd_sigmas, check_finite=False)

    @staticmethod
    def feature_mmd(f_fake, f_real):
        """MMD² on D's features, bandwidths from the median heuristic on this batch's real
        features (the features move as D learns; on CuPy the median is read to the host)."""
        return losses.mmd(f_fake, f_real, None, check_finite=False)

    def after_d(self, s_real, s_fake):
        if self.lecam:
            self.lecam.update(s_real, s_fake)

    def lecam_state(self):
        return self.lecam.state_dict() if self.lecam else {}

    def load_lecam_state(self, state, xp):
        if self.lecam:
            self.lecam.load_state_dict({k: xp.asarray(v, np.float32) for k, v in state.items()})


def weighted(w, term, keep=None):
    """w · term, as a term; with keep=, the unweighted value is kept as keep.last_mmd for the log."""
    def scaled(*arrays):
        v, g = term(*arrays)
        if keep is not None:
            keep.last_mmd = v
        return w * v, np.float32(w) * g
    return scaled


# ---- the demos' flags ----------------------------------------------------------------------
def add_flags(p, *, images):
    """The cure flags, with the same names in demos/mnist_gan.py and demos/mixture_gan.py."""
    g = p.add_argument_group("cures for mode collapse and instability (see ../shared/CURES.md, the README)")
    g.add_argument("--loss", choices=sorted(losses.ADVERSARIAL), default="ns",
                   help="adversarial loss: ns = non-saturating (DCGAN, Goodfellow et al. 2014); hinge "
                        "(SNGAN/BigGAN, Miyato et al. 2018); ls = least squares (Mao et al. 2017); wgan = "
                        "Wasserstein (Arjovsky et al. 2017; use with --sn). Default: ns")
    g.add_argument("--sn", action="store_true",
                   help="spectral normalisation of every weight in D (Miyato et al. 2018); drops D's BatchNorm")
    g.add_argument("--diffaug", metavar="POLICY", nargs="?", const="translation,cutout",
                   help="differentiable augmentation of real and fake before D (Zhao et al. 2020): "
                        "'translation', 'cutout' or both (the default with no value); images only")
    g.add_argument("--ema", metavar="DECAY", nargs="?", type=float, const=0.999,
                   help="sample from an exponential moving average of G's weights (Yazıcı et al. 2019), "
                        "decay ramped up from 0 and capped at DECAY (default 0.999)")
    g.add_argument("--mbstd", metavar="GROUP", nargs="?", type=int, const=4,
                   help="minibatch standard deviation as an extra feature of D (Karras et al. 2018), "
                        "groups of GROUP (default 4)")
    g.add_argument("--mbdisc", metavar="KERNELS", nargs="?", type=int, const=100,
                   help="minibatch discrimination before D's last layer (Salimans et al. 2016), "
                        "KERNELS kernels of dimension 5 (default 100)")
    g.add_argument("--pack", metavar="M", type=int, default=1,
                   help="PacGAN (Lin et al. 2018): D judges M samples at once. Default: 1 (off)")
    g.add_argument("--feature-matching", metavar="W", type=float, default=0.0,
                   help="add W × feature matching on D's last hidden layer to G's loss (Salimans et al. "
                        "2016). Default: 0")
    g.add_argument("--mmd-weight", metavar="W", type=float, default=0.0,
                   help="add W × MMD² (Gaussian kernels) between fake and real to G's loss (Li et al. 2015, "
                        "2017). Default: 0 (off)")
    g.add_argument("--mmd-space", choices=["pixels", "features"], default="pixels",
                   help="where --mmd-weight compares: pixels, or D's last hidden layer. Default: pixels")
    g.add_argument("--d-mmd-weight", metavar="W", type=float, default=0.0,
                   help="D raises W × MMD² of its features of fake against real (MMD-GAN's adversarial "
                        "kernel, Li et al. 2017; through the fake pass, f(x) held fixed). Default: 0")
    g.add_argument("--lecam", metavar="W", type=float, default=0.0,
                   help="LeCam regulariser of D's logits, weight W (Tseng et al. 2021). Default: 0")
    g.add_argument("--unroll", metavar="K", type=int, default=0,
                   help="G trains against D unrolled K steps ahead, then D is restored (Metz et al. 2017; "
                        "first-order: no gradient through the unrolled steps). Default: 0")
    g.add_argument("--lr-d", type=float, help="D's learning rate (TTUR, Heusel et al. 2017). Default: --lr")
    g.add_argument("--lr-g", type=float, help="G's learning rate. Default: --lr")
    g.add_argument("--d-steps", metavar="N", type=int, default=1,
                   help="D updates per G update, on the step's batch. Default: 1")
    g.add_argument("--feature-layer", metavar="I", type=int,
                   help="the index of D's layer whose output is 'D's features' for feature matching and "
                        "feature MMD (see --trace). Default: the last hidden layer")
    p.set_defaults(images=images)
    return g


def check_flags(p, args):
    """Refuse, through the parser (one line, exit 2), cure flag values that cannot work."""
    for name in ("feature_matching", "mmd_weight", "d_mmd_weight", "lecam"):
        v = getattr(args, name)
        if not (math.isfinite(v) and v >= 0):
            p.error(f"--{name.replace('_', '-')}: expected a finite weight >= 0, got {v}")
    for name in ("lr_d", "lr_g"):
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            p.error(f"--{name.replace('_', '-')}: expected a finite learning rate > 0, got {v}")
    if args.ema is not None and not 0 <= args.ema < 1:
        p.error(f"--ema: expected a decay in [0, 1), got {args.ema}")
    for name, least in (("mbstd", 1), ("mbdisc", 1), ("pack", 1), ("d_steps", 1), ("unroll", 0)):
        v = getattr(args, name)
        if v is not None and v < least:
            p.error(f"--{name.replace('_', '-')}: expected an integer >= {least}, got {v}")
    if args.diffaug is not None:
        if not args.images:
            p.error("--diffaug: translation and cutout need images; these samples are points")
        bad = [x for x in args.diffaug.split(",") if x.strip() not in ("translation", "cutout")]
        if bad:
            p.error(f"--diffaug: expected 'translation', 'cutout' or both, comma-separated; got {args.diffaug!r}")
    if args.batch_size % args.pack:
        p.error(f"--pack {args.pack}: expected --batch-size to be a multiple of it, got {args.batch_size}")
    seen = args.batch_size // args.pack  # the batch D's minibatch layers see
    if args.mbstd and seen % min(args.mbstd, seen):
        p.error(f"--mbstd {args.mbstd}: expected the batch D sees (--batch-size / --pack = {seen}) to be a "
                f"multiple of the group")


def structure(args):
    """The D-structure cures from the flags: the `cures` a checkpoint records, and the
    keyword arguments of the discriminator builders in minigan.models."""
    return dict(sn=bool(args.sn), diffaug=args.diffaug, mbstd=args.mbstd or 0, mbdisc=args.mbdisc or 0,
                pack=args.pack)


def trainer_options(args):
    """The GANTrainer keyword arguments for the cure flags."""
    return dict(loss=args.loss, lr_d=args.lr_d, lr_g=args.lr_g, d_steps=args.d_steps, unroll=args.unroll,
                ema=args.ema, mmd_weight=args.mmd_weight, mmd_space=args.mmd_space,
                d_mmd_weight=args.d_mmd_weight, feature_matching=args.feature_matching, lecam=args.lecam,
                feature_layer=args.feature_layer, cures=structure(args))
