"""What one GAN step computes, and nothing else: no files, no signals, no clocks (the loop that
never loses work is minigan/trainer.py).

A GAN holds its networks by name — G and D, and whatever a cure adds (MRGAN's encoder "E") —
one Adam per network, and the cures that are on (minigan/cures/, one file each). One step:

    fake = G(z)
    d_steps times: D's step on real and fake            d_update
    each cure's before_g                                 (unrolled D steps ahead)
    G's step through D                                   g_update
    each cure's after_g                                  (unrolled D goes back; EMA of G)

Terms return (value, gradient) at a tap; each pass sums its tap's terms and runs one backward:

    tap                 pass         terms (the cure that adds each)
    d_real              D on real    adversarial D loss on s_r (loss, madgan, ebgan); LeCam
    d_fake              D on fake    adversarial D loss on s_f; LeCam
    d_fake_features     D on fake    −w·MMD²(f(G(z)), f(x)) (d_mmd)
    g_fake              G's step     adversarial G loss on s_f
    g_fake_features     G's step     feature matching; MMD² on D's features (mmd); EBGAN's
                                     pulling-away term
    g_fake_pixels       G's step     MMD² on pixels (mmd); MAD-GAN's similarity penalty; MRGAN's
                                     diffusion term, −log D2(G(z))

"Features" are the output of D's layer at a Tap (minigan/layers/tap.py): f(x) is read there
and the terms' gradients join the backward there. Work that is not a term at a tap adds to a
network's gradients in d_extra (gradient penalties) or g_extra (MRGAN's reconstruction pass).
"""
import numpy as np

from . import backend as backend_mod
from . import checkpoint
from . import cures as cure_registry
from .cures.base import BadOption
from .layers.tap import Tap, find_tap
from .optim import Adam

STATS = ("loss_d", "loss_g", "d_x", "d_g_z", "mmd", "r_t")
TAPS = ("d_real", "d_fake", "d_fake_features", "g_fake", "g_fake_features", "g_fake_pixels")


class OptionsDiffer(checkpoint.CheckpointError):
    """A checkpoint of other networks or other cures than this run's."""


class Taps:
    """The terms of one run by tap; at() sums their values and their gradients."""

    def __init__(self):
        self.terms = {tap: [] for tap in TAPS}

    def add(self, tap, term):
        self.terms[tap].append(term)

    def at(self, tap, *arrays):
        """Σ of the values and of the gradients of the terms at `tap`: (value, grad or None)."""
        value, grad = 0.0, None
        for term in self.terms[tap]:
            v, g = term(*arrays)
            value, grad = value + v, g if grad is None else grad + g
        return value, grad


class GAN:
    """Generator G (z -> sample) against discriminator D (sample -> logits), with the cures whose
    options are given (the keywords of minigan/cures/, e.g. loss="hinge", ema=0.999; their
    defaults are off). `networks`: more networks by name, for the cures that train their own
    (MRGAN's "E"). `feature_layer`: the index of D's layer whose output is "D's features"
    (default: D's last hidden layer); it is wrapped in a Tap when a cure needs features, unless
    D already holds a Tap named "features". Every option is checked before any state is made
    (BadOption). `config` is what the run was asked for, as given; checkpoints record it.
    """

    def __init__(self, G, D, *, nz, backend="numpy", lr=2e-4, beta1=0.5, seed=0, feature_layer=None,
                 networks=None, **options):
        values = cure_registry.resolve(options)
        core = {"nz": nz, "lr": lr, "beta1": beta1}
        for key, ok, expect in (("nz", isinstance(nz, (int, np.integer)) and nz >= 1, "an integer >= 1"),
                                ("lr", isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0,
                                 "a finite learning rate > 0"),
                                ("beta1", isinstance(beta1, (int, float)) and 0 <= beta1 < 1, "0 <= beta1 < 1")):
            if not ok:
                raise BadOption(f"{key}={core[key]!r}: expected {expect}")
        nz, lr, beta1 = int(nz), float(lr), float(beta1)  # plain numbers: checkpoints record them as JSON
        self.config = dict(nz=nz, backend=backend, lr=lr, beta1=beta1, seed=seed, feature_layer=feature_layer,
                           **values)
        self.nets = {"G": G, "D": D, **(networks or {})}
        self.cures = cure_registry.build(values)
        self.notes = []  # what the run should say once when it starts (a cure used in an odd way)
        for cure in self.cures:
            for name in cure.networks:
                if name not in self.nets:
                    raise BadOption(f"{cure.name} trains a network {name!r} of its own; pass it as "
                                    f"networks={{{name!r}: ...}} (minigan.models.build_networks makes one)")
        needed = any(c.needs_features for c in self.cures)
        spot = self._feature_spot(D, feature_layer) if needed or feature_layer is not None else None
        for cure in self.cures:
            cure.check(self)
        # ---- state from here on
        self.nz, self.seed = nz, seed
        self.xp = backend_mod.get(backend)
        for net in self.nets.values():
            net.to(self.xp, np.float32)
        self.features = spot if needed else None
        if needed and isinstance(spot, int):  # wrap D's layer there in a Tap, which keeps its parameters' names
            D.layers[spot] = self.features = Tap(D.layers[spot], "features")
        self.taps, self.d_steps = Taps(), 1
        self.d_grads_in_g_step = False  # ∂L_G/∂θ_D: only the second-order unroll needs them
        self.lr = {name: lr for name in self.nets}
        self.betas = {name: (beta1, 0.999) for name in self.nets}
        for cure in self.cures:
            cure.attach(self)
        self.opt = {name: Adam(net, lr=self.lr[name], betas=self.betas[name]) for name, net in self.nets.items()}
        self.adversarial = next(c for c in self.cures if c.adversarial)

    def _feature_spot(self, D, index):
        """D's Tap named "features", or the index of D's layer to wrap in one; BadOption if none fits."""
        found = find_tap(D, "features")
        if found is not None:
            return found
        n = len(D.layers)
        index = n - 2 if index is None else index
        if not isinstance(index, (int, np.integer)) or not 0 <= index < n - 1:
            raise BadOption(f"feature_layer={index!r}: expected the index of one of D's layers 0..{n - 2} (not "
                            f"the last: D's head needs a layer); D's layers: "
                            + ", ".join(f"{i} {type(layer).__name__}" for i, layer in enumerate(D.layers)),
                            f"--feature-layer {index}: expected the index of one of D's layers 0..{n - 2}; "
                            "D's layers: " + ", ".join(f"{i} {type(layer).__name__}" for i, layer in enumerate(D.layers)))
        return int(index)

    @property
    def G(self):
        return self.nets["G"]

    @property
    def D(self):
        return self.nets["D"]

    def lipschitz(self):
        """True when a cure keeps D's scores Lipschitz (spectral norm, WGAN-GP's penalty)."""
        return any(c.lipschitz for c in self.cures)

    # ---- one step --------------------------------------------------------------------------
    def train_step(self, real, z):
        """d_steps updates of D, then one of G, on backend arrays. Returns the stats vector (STATS)."""
        fake = self.G.forward(z)
        for _ in range(self.d_steps):
            loss_d, s_real, s_fake = self.d_update(real, fake)
        for cure in self.cures:
            cure.before_g(self, real, fake)
        loss_g = self.g_update(real, fake)
        for cure in self.cures:
            cure.after_g(self, real, fake)
        d_x, d_g_z, r_t = self.adversarial.scores(s_real, s_fake)
        mmd = next((c.last for c in self.cures if c.name == "mmd"), 0.0)  # the log's "mmd" column
        xp = self.xp
        return xp.stack([xp.asarray(v, np.float32) for v in (loss_d, loss_g, d_x, d_g_z, mmd, r_t)])

    def d_update(self, real, fake):
        """One step of D: its gradients (d_gradients), the cures' extra work (penalties), Adam, and
        the hooks after it. Returns (L_D, s_real, s_fake)."""
        loss, s_real, s_fake, _ = self.d_gradients(real, fake)
        loss = loss + sum(cure.d_extra(self, real, fake) for cure in self.cures)
        self.opt["D"].step()
        for cure in self.cures:
            cure.after_d(self, s_real, s_fake)
        return loss, s_real, s_fake

    def d_gradients(self, real, fake):
        """D's loss and its gradients in D.grads. Real and fake go through D separately (BatchNorm
        and the minibatch layers see one kind at a time); each pass sums its terms' gradients at
        D's output (and at its features) and runs one backward.
        Returns (L_D, s_real, s_fake, ∂L_D/∂fake)."""
        D, at = self.D, self.taps.at
        s_real = D.forward(real)
        h_real = self.features.value if self.features else None
        loss_real, ds = at("d_real", s_real)
        D.backward(ds)
        grads_real = {name: g.copy() for name, g in D.grads.items()}
        s_fake = D.forward(fake)
        loss_fake, ds = at("d_fake", s_fake)
        loss_feat = self._at_features("d_fake_features", h_real)
        dfake = D.backward(ds)
        for name, layer, k in D.named_parameters():
            layer.grads[k] += grads_real[name]
        return loss_real + loss_fake + loss_feat, s_real, s_fake, dfake

    def g_update(self, real, fake):
        """One step of G through D. D's own parameter gradients are not needed (param_grads=False;
        only the second-order unroll asks for them, d_grads_in_g_step). G's terms add their
        gradients at D's output, at D's features and at G's output. Returns L_G."""
        G, D, at = self.G, self.D, self.taps.at
        h_real = None
        if any(c.needs_real_features for c in self.cures):
            D.forward(real)
            h_real = self.features.value  # under the D that G is trained against
        s_fake = D.forward(fake)
        loss_adv, ds = at("g_fake", s_fake)
        loss_feat = self._at_features("g_fake_features", h_real)
        dfake = D.backward(ds, param_grads=self.d_grads_in_g_step)
        loss_pix, dpix = at("g_fake_pixels", fake, real)
        G.backward(dfake if dpix is None else dfake + dpix)
        loss_extra = sum(cure.g_extra(self, real, fake) for cure in self.cures)
        self.opt["G"].step()
        return loss_adv + loss_feat + loss_pix + loss_extra

    def _at_features(self, tap, h_real):
        """The terms at D's features of the batch just forwarded: their value; their gradient is
        added at the Tap for the next backward."""
        if not self.taps.terms[tap]:
            return 0.0
        value, grad = self.taps.at(tap, self.features.value, h_real)
        self.features.add_grad(grad)
        return value

    # ---- what a run saves ------------------------------------------------------------------
    def prepare(self, data):
        """Before the first step: the values cures derive from the data (MMD's bandwidths)."""
        for cure in self.cures:
            cure.prepare(data, self.seed)

    def check_data(self, batch_size, shape):
        for cure in self.cures:
            cure.check_data(batch_size, tuple(shape))

    @property
    def sampler(self):
        """The generator samples come from: a cure's (EMA's average, its BatchNorm statistics
        measured first if G has stepped since) or G."""
        return next((s for s in (c.sampler() for c in self.cures) if s is not None), self.G)

    def grid(self, n):
        """(order, per row) for a grid of n samples: a cure's (MAD-GAN's, one row per generator)
        or as they come, 8 a row."""
        return next((g for g in (c.grid(n) for c in self.cures) if g is not None), (np.arange(n), 8))

    def state_dict(self):
        """{"<network>/<i>.<key>", "optim_<network>/...", "<cure prefix>/...": array}."""
        parts = {**{name: net.state_dict() for name, net in self.nets.items()},
                 **{f"optim_{name}": opt.state_dict() for name, opt in self.opt.items()},
                 **{c.prefix: c.state_dict() for c in self.cures}}
        return {k: v for prefix, part in parts.items() for k, v in checkpoint.with_prefix(part, prefix).items()}

    def load_state_dict(self, arrays):
        """The inverse of state_dict (ValueError naming what does not fit)."""
        for name, net in self.nets.items():
            net.load_state_dict(checkpoint.subset(arrays, name))
        for name, opt in self.opt.items():
            opt.load_state_dict(checkpoint.subset(arrays, f"optim_{name}"))
        for c in self.cures:
            c.load_state_dict(checkpoint.subset(arrays, c.prefix), self.xp)

    def rng_states(self):
        return {name: net.rng_states() for name, net in self.nets.items()}

    def load_rng_states(self, states):
        for name, net in self.nets.items():
            net.load_rng_states(states.get(name, {}))

    def check_resume(self, saved, networks, path):
        """OptionsDiffer unless the checkpoint at `path` (its config `saved`, its networks' layers)
        comes from a run with the same networks and the same cures with the same options (learning
        rates and beta1 may change); how the options were spelled (given or left at their
        defaults) does not matter."""
        def differ(what, old, new):
            raise OptionsDiffer(f"{path}: saved with {what}={old!r}, this run has {what}={new!r}; resume with the "
                                f"same options")
        now = self.config
        for key in ("nz", "seed"):  # the seed draws the fixed grid's z and the penalties' points
            if saved.get(key) != now[key]:
                differ(key, saved.get(key), now[key])
        old_values = cure_registry.resolve({k: v for k, v in saved.items() if k in cure_registry.options()})
        for cls in cure_registry.CURES:
            was, is_ = cls.on(old_values), cls.on(now)
            for o in cls.options:
                if o.key not in cls.changeable and (was or is_) and old_values[o.key] != now[o.key]:
                    differ(o.key, old_values[o.key], now[o.key])
        default = len(self.D.layers) - 2  # feature_layer=None means D's last hidden layer
        layer = {k: default if v is None else v for k, v in (("saved", saved.get("feature_layer")),
                                                             ("now", now["feature_layer"]))}
        if any(c.needs_features for c in self.cures) and layer["saved"] != layer["now"]:
            differ("feature_layer", layer["saved"], layer["now"])
        for name, layers in (networks or {}).items():
            mine = self.structure().get(name)
            if mine != layers:
                at = next((i for i, (a, b) in enumerate(zip(layers, mine or [])) if a != b),
                          min(len(layers), len(mine or [])))
                raise OptionsDiffer(f"{path}: its network {name} differs from this run's at layer {at}: saved "
                                    f"{layers[at] if at < len(layers) else 'nothing'}, this run has "
                                    f"{mine[at] if mine and at < len(mine) else 'nothing'}")

    def structure(self):
        """What the networks are, layer by layer: compared on resume (not how options were spelled)."""
        return {name: [repr(leaf) for leaf in net.leaves()] for name, net in self.nets.items()}
