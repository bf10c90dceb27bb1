"""What the trainer hands each optimizer, checked: for every cure, each network's gradient against
central differences of the losses the step reports (float64, tiny networks, random draws held
fixed, a recorder in place of Adam). Every layer and term is gradient-checked alone elsewhere;
this catches the wiring: the taps' sums, the Tap at D's features, the real pass added back, the
signs, the extra passes."""
import numpy as np
import pytest

from minigan import models
from minigan.gan import GAN
from minigan.layers import SpectralNorm

EPS = 1e-6


class Recorder:
    """In place of Adam: keeps a copy of the network's gradients at each step, changes nothing."""

    def __init__(self, net):
        self.net, self.grads = net, None

    def step(self):
        self.grads = {k: g.copy() for k, g in self.net.grads.items()}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def tiny_image_networks(options, seed=0):
    """A GAN on 8x8 images small enough for central differences (DiffAugment needs images)."""
    from minigan.layers import Conv2D, Dense, DiffAugment, Flatten, LeakyReLU, Sequential
    G = models.mlp_generator(3, 64, hidden=8, depth=1, tanh=True, out_shape=(1, 8, 8), seed=seed)
    rng = np.random.default_rng(seed + 1)
    D = Sequential(DiffAugment(options["diffaug"], translation_ratio=0.25, rng=seed + 2),
                   Conv2D(1, 3, 3, stride=2, padding=1, rng=rng), LeakyReLU(0.2), Flatten(), Dense(48, 1, rng=rng))
    return G, D, {}


def make(options, n=8, seed=0):
    """(gan, real, z) in float64 with recorders for optimizers; D's random draws held."""
    rng = np.random.default_rng(seed)
    if options.get("diffaug"):
        G, D, nets = tiny_image_networks(options, seed)
        real, nz = np.tanh(rng.standard_normal((n, 1, 8, 8))), 3
    else:
        G, D, nets = models.build_networks("mlp", nz=3, seed=seed, hidden=8, options=options)
        real, nz = rng.standard_normal((n, 2)) * 2, 3
    gan = GAN(G, D, nz=nz, networks=nets, **options)
    for net in gan.nets.values():
        net.to(np, np.float64)
        for leaf in net.leaves():
            leaf.hold_draw = True
            if isinstance(leaf, SpectralNorm):  # u, v converged: σ is then the true top singular value
                leaf.n_power_iterations = 100
    gan.prepare(real)
    gan.opt = {name: Recorder(net) for name, net in gan.nets.items()}
    return gan, real, rng.standard_normal((n, nz))


def pure(gan, f):
    """f() with every buffer (BatchNorm's running statistics, SpectralNorm's u, v) and the D-step
    state of the cures (LeCam's anchors) put back afterwards: a function of the parameters only."""
    buffers = [(leaf, {k: v.copy() for k, v in leaf.buffers.items()}) for net in gan.nets.values()
               for leaf in net.leaves()]
    cures = {c.name: c.state_dict() for c in gan.cures if c.in_d_step}
    try:
        return float(f())
    finally:
        for leaf, saved in buffers:
            leaf.buffers.update(saved)
        for c in gan.cures:
            if c.in_d_step:
                c.load_state_dict(cures[c.name], np)


def check(gan, name, loss, analytic, n_dirs=3, seed=0, rtol=1e-6):
    """Directional derivatives of loss() along random unit directions in all of network `name`'s
    parameters at once, against ⟨analytic gradient, direction⟩."""
    net = gan.nets[name]
    slots = list(net.named_parameters())
    rng = np.random.default_rng(seed)
    for _ in range(n_dirs):
        d = {k: rng.standard_normal(layer.params[p].shape) for k, layer, p in slots}
        norm = np.sqrt(sum((v * v).sum() for v in d.values()))
        expect = sum((analytic[k] * d[k]).sum() for k, _, _ in slots) / norm
        base = {k: layer.params[p].copy() for k, layer, p in slots}
        values = []
        for sign in (1, -1):
            for k, layer, p in slots:
                layer.params[p] = base[k] + sign * EPS * d[k] / norm
            values.append(loss())
        for k, layer, p in slots:
            layer.params[p] = base[k]
        numeric = (values[0] - values[1]) / (2 * EPS)
        assert abs(numeric - expect) <= rtol * max(abs(numeric), abs(expect)) + 1e-9, \
            f"{name}: analytic {expect:.10g}, numeric {numeric:.10g}"


def d_loss(gan, real, fake):
    return pure(gan, lambda: gan.d_update(real, fake)[0])


def g_loss(gan, real, z):
    def f():
        return gan.g_update(real, gan.G.forward(z))
    return pure(gan, f)


ARMS = {
    "ns": {}, "hinge": dict(loss="hinge"), "ls": dict(loss="ls"), "wgan+sn": dict(loss="wgan", sn=True),
    "lecam": dict(lecam=0.3), "feature matching": dict(feature_matching=1.0), "pixel mmd": dict(mmd_weight=1.0),
    "feature mmd": dict(mmd_weight=1.0, mmd_space="features"), "mbstd": dict(mbstd=2), "mbdisc": dict(mbdisc=3),
    "pack": dict(pack=2), "diffaug": dict(diffaug="translation,cutout"), "ema+ttur": dict(ema=0.9, lr_d=1e-3, d_steps=2),
    "madgan": dict(madgan=3), "madgan-sim": dict(madgan=3, madgan_sim=0.5),
    "ebgan": dict(ebgan=True, ebgan_margin=5.0), "mrgan": dict(mrgan=0.2),
    "mrgan-diffusion": dict(mrgan=0.2, mrgan_diffusion=True), "d-mmd": dict(d_mmd_weight=0.1),
}


@pytest.mark.parametrize("arm", list(ARMS))
def test_each_optimizer_gets_the_gradient_of_the_reported_loss(arm):
    options = ARMS[arm]
    gan, real, z = make(options)
    fake = gan.G.forward(z)
    if "d_mmd_weight" in options:  # D raises MMD² with f(x) held fixed: differentiate exactly that
        pure(gan, lambda: gan.D.forward(real).sum())
        held, term = gan.features.value.copy(), gan.taps.terms["d_fake_features"][0]
        gan.taps.terms["d_fake_features"][0] = lambda f_fake, f_real: term(f_fake, held)
    pure(gan, lambda: gan.d_update(real, fake)[0])
    check(gan, "D", lambda: d_loss(gan, real, fake), gan.opt["D"].grads)

    pure(gan, lambda: gan.g_update(real, gan.G.forward(z)))
    analytic = {name: gan.opt[name].grads for name in gan.nets if name not in ("D", "D2")}
    for name in analytic:
        check(gan, name, lambda: g_loss(gan, real, z), analytic[name], seed=1)
    if "D2" in gan.nets:
        cure = next(c for c in gan.cures if c.name == "mrgan")
        recon = gan.G.forward(gan.nets["E"].forward(real))
        pure(gan, lambda: cure._train_d2(gan, recon, fake))
        check(gan, "D2", lambda: pure(gan, lambda: cure._train_d2(gan, recon, fake)), gan.opt["D2"].grads, seed=2)


def test_first_order_unrolling_differentiates_g_against_the_unrolled_d():
    gan, real, z = make(dict(unroll=2))
    from minigan.optim import Adam
    gan.opt["D"] = Adam(gan.D, lr=1e-2, betas=(0.5, 0.999))
    fake = gan.G.forward(z)
    before = {k: v.copy() for k, v in gan.D.state_dict().items()}
    gan.cures[-1].before_g(gan, real, fake)
    moved = any(not np.array_equal(before[k], v) for k, v in gan.D.state_dict().items())
    assert moved  # D took its two steps ahead; G's gradient is taken against this D, held fixed
    pure(gan, lambda: gan.g_update(real, gan.G.forward(z)))
    check(gan, "G", lambda: g_loss(gan, real, z), gan.opt["G"].grads)
    gan.cures[-1].after_g(gan, real, fake)
    assert all(np.array_equal(before[k], v) for k, v in gan.D.state_dict().items())  # and D went back


# ---- the write-your-own-cure page ---------------------------------------------------------------
def test_the_own_cure_page_runs_as_written(tmp_path, monkeypatch, capsys):
    import argparse
    import re
    from pathlib import Path

    from minigan import cures
    from minigan.gradcheck import numerical_gradient, rel_error
    from minigan.trainer import GANTrainer, OptionsDiffer, latest_checkpoint

    page = (Path(__file__).resolve().parents[1] / "docs" / "own_cure.md").read_text()
    code = re.search(r"<!-- own-cure -->\s*```python\n(.*?)```", page, re.S).group(1)
    namespace = {}
    exec(compile(code, "drift.py", "exec"), namespace)
    Drift = namespace["Drift"]
    monkeypatch.setattr(cures, "CURES", cures.CURES + [Drift])

    parser = argparse.ArgumentParser(prog="demo")
    cures.add_flags(parser)
    assert "--drift W" in parser.format_help() and "Karras et al." in parser.format_help()
    with pytest.raises(SystemExit):
        cures.from_args(parser, parser.parse_args(["--drift", "-1"]), batch_size=8, shape=(2,))
    assert "--drift -1.0: expected a finite weight >= 0" in capsys.readouterr().err

    s = np.random.default_rng(0).standard_normal((8, 1))
    term = Drift({"drift": 0.5}).term
    assert rel_error(term(s)[1], numerical_gradient(lambda: term(s)[0], s)) < 1e-8

    gan, real, z = make(dict(drift=0.5))  # the wiring: D's optimizer gets the gradient of the reported loss
    fake = gan.G.forward(z)
    pure(gan, lambda: gan.d_update(real, fake)[0])
    check(gan, "D", lambda: d_loss(gan, real, fake), gan.opt["D"].grads)

    data = np.random.default_rng(0).standard_normal((32, 2)).astype(np.float32)
    G, D, _ = models.build_networks("mlp", nz=2, hidden=8)
    t = GANTrainer(G, D, nz=2, drift=0.5, out_dir=tmp_path, log=lambda *a: None)
    t.fit(data, epochs=1, batch_size=8)
    assert t.config["drift"] == 0.5
    G, D, _ = models.build_networks("mlp", nz=2, hidden=8)
    other = GANTrainer(G, D, nz=2, drift=0.1, out_dir=tmp_path, log=lambda *a: None)
    with pytest.raises(OptionsDiffer, match=r"saved with drift=0.5, this run has drift=0.1"):
        other.restore(latest_checkpoint(tmp_path))


@pytest.mark.parametrize("arm", [dict(), dict(loss="ls", mbstd=2)], ids=["ns", "ls-mbstd"])
def test_second_order_unrolling_differentiates_through_ds_adam_steps(arm):
    """unroll_order=2: G's gradient is that of L_G(θ_G, θ_D^K(θ_G)), D's K Adam steps included
    (Metz et al.), against central differences of that whole function; the first-order surrogate
    misses the term."""
    from minigan.cures.unroll import restore, snapshot
    from minigan.optim import Adam
    gan, real, z = make(dict(unroll=2, unroll_order=2, **arm))
    gan.opt["D"] = Adam(gan.D, lr=0.05, betas=(0.5, 0.999))
    gan.d_update(real, gan.G.forward(z))  # Adam's moments are not zero when the unrolled steps start
    unroll = next(c for c in gan.cures if c.name == "unroll")
    start = snapshot(gan)

    def unrolled_loss():
        restore(gan, start, rng=True)
        fake = gan.G.forward(z)
        unroll.before_g(gan, real, fake)
        loss = gan.g_update(real, fake)
        unroll.after_g(gan, real, fake)
        return pure(gan, lambda: loss)

    unrolled_loss()
    second = gan.opt["G"].grads
    check(gan, "G", unrolled_loss, second, rtol=1e-5)
    unroll.order, gan.d_grads_in_g_step = 1, False
    unrolled_loss()
    first = gan.opt["G"].grads
    with pytest.raises(AssertionError, match="G: analytic"):
        check(gan, "G", unrolled_loss, first, rtol=1e-5)  # the second-order term is not negligible here
