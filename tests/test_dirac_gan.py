"""DiracGAN (demos/dirac_gan.py): the vector field the engine computes equals the closed form of
Mescheder et al. 2018 for every game on (θ, ψ, γ) hypothesis draws; gradient descent does what
docs/dirac_gan.md says; the demo's command line."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("dirac_gan", REPO / "demos" / "dirac_gan.py")
dirac = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dirac)

values = st.floats(-3, 3)


def f_prime(t):
    """f(t) = −log(1 + e^(−t)), f'(t) = 1 / (1 + e^t)."""
    return 1 / (1 + np.exp(t))


def closed_form(game, theta, psi, gamma):
    """(θ̇, ψ̇) from the paper's equations; the penalties add −∂R/∂ψ to ψ's component, with
    R = γ/2 ψ² (R1, R2: ‖∇ₓD‖ = |ψ| everywhere) and R = γ (|ψ| − 1)² (WGAN-GP, DRAGAN)."""
    t = theta * psi
    v = {"minimax": (-psi * f_prime(t), theta * f_prime(t)),
         "ns": (-psi * f_prime(-t), theta * f_prime(t)),  # G minimises −f(−θψ): the non-saturating loss
         "wgan": (-psi, theta)}[game[0]]
    penalty = {None: 0.0, "r1": gamma * psi, "r2": gamma * psi,
               "wgan-gp": 2 * gamma * (abs(psi) - 1) * np.sign(psi), "dragan": 2 * gamma * (abs(psi) - 1) * np.sign(psi)}
    return v[0], v[1] - penalty[game[1]]


GAMES = [("minimax", None), ("ns", None), ("wgan", None), ("minimax", "r1"), ("ns", "r2"), ("wgan", "wgan-gp"),
         ("ns", "dragan")]


@given(st.sampled_from(GAMES), values, values, st.floats(0, 10))
def test_the_engines_field_is_the_closed_form(game, theta, psi, gamma):
    assume(abs(psi) > 1e-6)  # |ψ| has its kink at 0
    loss = "wgan" if game[0] == "wgan" else "ns"
    field = dirac.DiracGAN(loss, g_loss="minimax" if game[0] == "minimax" else None, penalty=game[1], weight=gamma)
    np.testing.assert_allclose(field(theta, psi), closed_form(game, theta, psi, gamma), rtol=1e-12, atol=1e-12)


def test_the_panels_fields_are_the_games_they_name():
    titles = [title for title, _ in dirac.panels(2.0)]
    assert titles == ["GAN (the paper's minimax L)", "GAN, non-saturating G (minigan's ns)", "WGAN",
                      "WGAN-GP, λ = 2", "GAN + R1, γ = 2", "unrolled GAN, 5 steps of D (η = 0.5)"]
    games = [("minimax", None), ("ns", None), ("wgan", None), ("wgan", "wgan-gp"), ("minimax", "r1")]
    for (_, field), game in zip(dirac.panels(2.0), games):
        np.testing.assert_allclose(field(0.7, -1.3), closed_form(game, 0.7, -1.3, 2.0), rtol=1e-12)


def test_descent_circles_diverges_and_converges_as_the_page_says():
    fields = dict(dirac.panels(1.0))
    radius = {title: np.hypot(*dirac.descend(field, (1.0, 1.0), 0.1, 200)[-1]) for title, field in fields.items()}
    start = np.hypot(1.0, 1.0)
    assert start < radius["GAN (the paper's minimax L)"] < 1.5 * start  # spirals slowly out
    assert radius["WGAN"] > 2.5 * start  # (1 + h²)^(1/2) a step: out, fast
    assert radius["GAN + R1, γ = 1"] < 1e-3 * start  # in
    alternating = dirac.descend(fields["WGAN"], (1.0, 1.0), 0.1, 200, alternating=True)
    assert np.abs(np.hypot(*alternating.T) - start).max() < 0.15 * start  # alternating steps: a closed orbit


def test_the_demo_writes_its_figure_and_answers_mistakes_in_one_line(tmp_path, capsys):
    assert dirac.main(["--out", str(tmp_path), "--steps", "5", "--grid", "3"]) == 0
    assert (tmp_path / "dirac_gan.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "GAN + R1, γ = 1" in out and f"wrote {tmp_path / 'dirac_gan.png'}" in out
    with pytest.raises(SystemExit) as stop:
        dirac.main(["--lr", "0"])
    assert stop.value.code == 2 and "expected --lr > 0 (finite), got 0.0" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert dirac.main(["--out", str(tmp_path / "file"), "--steps", "1", "--grid", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dirac_gan.py: cannot write") and len(err.splitlines()) == 1, err


def f(t):
    return -np.log1p(np.exp(-t))


@given(values, values, st.integers(0, 6), st.floats(0.01, 1.0))
def test_the_unrolled_field_is_the_derivative_through_ds_steps(theta, psi, k, eta):
    """The paper's minimax game: ψ_{k+1} = ψ_k + η θ f'(θψ_k), and G's component is
    −d/dθ f(θ ψ_K(θ)), the second-order term included (a central difference of the closed form)."""
    def unrolled(th):
        p = psi
        for _ in range(k):
            p = p + eta * th * f_prime(th * p)
        return f(th * p)
    h = 1e-5
    expect = (-(unrolled(theta + h) - unrolled(theta - h)) / (2 * h), theta * f_prime(theta * psi))
    field = dirac.Unrolled(dirac.DiracGAN("ns", g_loss="minimax"), k, eta)
    np.testing.assert_allclose(field(theta, psi), expect, rtol=1e-6, atol=1e-8)
    first = dirac.Unrolled(dirac.DiracGAN("ns", g_loss="minimax"), k, eta, order=1)(theta, psi)
    p = psi
    for _ in range(k):
        p = p + eta * theta * f_prime(theta * p)
    np.testing.assert_allclose(first, (-p * f_prime(theta * p), theta * f_prime(theta * psi)), rtol=1e-9, atol=1e-12)
    if k == 0:  # no unrolling: the game's own field, both orders
        np.testing.assert_allclose(field(theta, psi), closed_form(("minimax", None), theta, psi, 0), rtol=1e-6,
                                   atol=1e-8)
