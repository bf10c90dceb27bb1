"""What a cure is: one object holding everything about it, and the Option that is both a flag of
the demos and a keyword of GANTrainer, with one check for both."""
import math

import numpy as np


class BadOption(ValueError):
    """An option the trainer cannot use, raised before any state is made. str() names the
    keyword (GANTrainer(..., ema=1.5)); `flag_message` names the flag (--ema 1.5)."""

    def __init__(self, message, flag_message=None):
        super().__init__(message)
        self.flag_message = flag_message or message


class Option:
    """One option: `key` is its keyword in the Python API and, with dashes, its flag in the
    demos (--key-name); `default` its value when not given; `check(value)` True when usable,
    `expect` what a usable value is (for the error). `flag` holds argparse's keyword arguments
    (type, nargs, const, choices, metavar, action); `help` cites the paper."""

    def __init__(self, key, default, help, *, check=None, expect="", cli=True, **flag):
        self.key, self.default, self.help, self.expect = key, default, help, expect
        self._check, self.flag, self.cli = check, flag, cli  # cli=False: a keyword of the API only

    @property
    def flag_name(self):
        return "--" + self.key.replace("_", "-")

    def validate(self, value):
        """BadOption unless `value` passes the check (None, the default of an optional value, always does)."""
        if value is None or self._check is None:
            return
        try:
            ok = bool(self._check(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise BadOption(f"{self.key}={value!r}: expected {self.expect}",
                            f"{self.flag_name} {value}: expected {self.expect}")

    def add_to(self, group):
        kw = dict(self.flag)
        if kw.get("action") != "store_true":
            kw.setdefault("default", self.default)
        group.add_argument(self.flag_name, help=self.help, **kw)


def weight(key, help, default=0.0, **kw):
    """An Option for a term's weight: a finite number >= 0, 0 (off) by default."""
    return Option(key, default, help, check=lambda v: math.isfinite(v) and v >= 0, expect="a finite weight >= 0",
                  type=float, metavar="W", **kw)


def count(key, default, least, help, **kw):
    """An Option for a whole number of at least `least`."""
    return Option(key, default, help, check=lambda v: isinstance(v, (int, np.integer)) and v >= least,
                  expect=f"an integer >= {least}", type=int, **kw)


def weighted(w, term):
    """w · term, as a term: (w · value, w · gradient), the gradient scaled in its own dtype."""
    def scaled(*arrays):
        v, g = term(*arrays)
        return w * v, np.float32(w) * g
    return scaled


class Cure:
    """One cure for mode collapse or instability. A cure class declares its `options` and, from
    their values, whether it is `on`; an instance exists only while it is on. What it may add to
    a run (every method is optional; the trainer calls them at fixed points of the step, so the
    step reads the same whatever is on):

      discriminator(), generator()   keyword arguments for minigan.models' builders: layers in
                                     a network (spectral norm, DiffAugment, Pack, minibatch layers,
                                     MAD-GAN's heads, EBGAN's autoencoder)
      networks                       names of networks of its own (MRGAN's encoder "E"), built by
                                     minigan.models.build_networks and trained by their own Adam
      check(gan)                     checks against the networks and the other cures (BadOption)
      check_data(batch_size, shape)  checks against the batch size and a sample's shape, before
                                     the first step (the demos call it before loading data)
      attach(gan)                    terms at the taps (gan.taps.add), optimizer settings
      prepare(data, seed)            values derived from the data (kept in its state)
      after_d(gan, s_real, s_fake)   a hook after D's optimizer step (LeCam's anchors)
      d_extra(gan, real, fake)       extra work of D's step whose gradients add to D's (penalties);
                                     returns its value
      before_g / after_g(gan, real, fake)  around G's step (unrolled D; EMA after it)
      g_extra(gan, real, fake)       extra passes of G's step adding to G's gradients (MRGAN)
      sampler()                      the generator to sample from, if not G (EMA's average)
      grid(n)                        (order, per row) to draw n samples, if not as they come
      state_dict() / load_state_dict(state, xp)  what it saves in a checkpoint, under `prefix`
    """
    name = "cure"
    options = ()
    networks = ()
    changeable = ()  # option keys a resume may change (recorded in the run's changes)
    adversarial = False  # True: it defines D's and G's adversarial terms (the Loss cure gives way)
    needs_features = False  # True: it reads or adds gradients at D's features (gan.features, a Tap)
    needs_real_features = False  # True: its term at D's features in G's step reads the real batch's
    in_d_step = False  # True: its state changes in D's step (unrolling D puts it back)
    lipschitz = False  # True: it keeps D's scores Lipschitz (--loss wgan needs one such cure)

    @classmethod
    def on(cls, values):
        return False

    @property
    def prefix(self):
        return self.name

    def discriminator(self):
        return {}

    def generator(self):
        return {}

    def check(self, gan):
        pass

    def check_data(self, batch_size, shape):
        pass

    def attach(self, gan):
        pass

    def prepare(self, data, seed):
        pass

    def after_d(self, gan, s_real, s_fake):
        pass

    def d_extra(self, gan, real, fake):
        return 0.0

    def before_g(self, gan, real, fake):
        pass

    def after_g(self, gan, real, fake):
        pass

    def g_extra(self, gan, real, fake):
        return 0.0

    def sampler(self):
        return None

    def grid(self, n):
        return None

    def state_dict(self):
        return {}

    def load_state_dict(self, state, xp):
        if state:
            raise ValueError(f"{self.name} keeps no state, got {sorted(state)}")
