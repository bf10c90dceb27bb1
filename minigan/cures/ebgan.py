"""EBGAN (Zhao et al. 2017): D is an autoencoder whose energy is its reconstruction error."""
from ..backend import xp_of
from ..layers.containers import Energy
from .base import BadOption, Cure, Option, weight


def pulling_away(S):
    """EBGAN's pulling-away term on a batch of codes S (N, ...), N >= 2:
        PT = 1/(N(N−1)) Σ_{i≠j} c_ij²,   c_ij = ⟨s_i, s_j⟩ / (|s_i| |s_j|);
        ∂PT/∂s_i = 4/(N(N−1)) Σ_{j≠i} c_ij (ŝ_j − c_ij ŝ_i) / |s_i|,   ŝ = s / |s|."""
    xp = xp_of(S)
    a = S.reshape(len(S), -1)
    n = len(a)
    norm = xp.sqrt((a * a).sum(axis=1)) + a.dtype.type(1e-12)
    u = a / norm[:, None]
    C = u @ u.T
    C = C - xp.diag(xp.diag(C))  # i = j is left out
    scale = 1 / (n * (n - 1))
    grad = (4 * scale) * (C @ u - (C * C).sum(axis=1)[:, None] * u) / norm[:, None]
    return scale * (C * C).sum(), grad.reshape(S.shape).astype(S.dtype)


class EBGAN(Cure):
    """D = Energy(autoencoder): E(x) the mean squared reconstruction error of each sample
    (minigan.layers.containers.Energy; minigan.models' discriminators take energy=True).
        L_D = mean E(x) + mean max(0, m − E(G(z)))      L_G = mean E(G(z)) + λ_PT · PT(S)
    S: the autoencoder's codes of the fake batch (its Tap "features"), PT the pulling-away term."""
    name = "ebgan"
    adversarial = True
    options = (Option("ebgan", False, "EBGAN (Zhao et al. 2017): D is an autoencoder and its reconstruction "
                      "error the energy; real samples get low energy, fakes at least the margin.",
                      check=lambda v: isinstance(v, bool), expect="True or False", action="store_true"),
               Option("ebgan_margin", 1.0, "with --ebgan: the margin m of D's hinge on the fakes' energy (the "
                      "energy is a mean squared error per value).", check=lambda v: v > 0,
                      expect="a margin > 0", type=float, metavar="M"),
               weight("ebgan_pt", "with --ebgan: the weight of the pulling-away term on the codes of the fake "
                      "batch (0.1 in the paper).", default=0.1))

    @classmethod
    def on(cls, values):
        return bool(values["ebgan"])

    def __init__(self, values):
        self.margin, self.pt = values["ebgan_margin"], values["ebgan_pt"]
        clash = [k for k in ("sn", "diffaug", "mbstd", "mbdisc") if values[k]] + (["pack"] if values["pack"] > 1 else [])
        if clash:
            raise BadOption(f"ebgan: its D is an autoencoder; {', '.join(clash)} change the classifier D and do "
                            "not apply", f"--ebgan: its D is an autoencoder; --{clash[0].replace('_', '-')} does "
                            "not apply to it")
        self.needs_features = self.pt > 0

    def discriminator(self):
        return {"energy": True}

    def check(self, gan):
        if not isinstance(gan.D, Energy):
            raise BadOption("ebgan: expected D to be an Energy (minigan.models' discriminators take energy=True)")

    def attach(self, gan):
        gan.taps.add("d_real", self.d_real)
        gan.taps.add("d_fake", self.d_fake)
        gan.taps.add("g_fake", self.g)
        if self.pt:
            gan.taps.add("g_fake_features", lambda S, S_real: self._pt(S))

    @staticmethod
    def d_real(e):
        return e.mean(), xp_of(e).full(e.shape, 1 / e.size, e.dtype)

    def d_fake(self, e):
        below = (e < self.margin).astype(e.dtype)
        return (xp_of(e).maximum(self.margin - e, 0)).mean(), -below / e.size

    @staticmethod
    def g(e):
        return e.mean(), xp_of(e).full(e.shape, 1 / e.size, e.dtype)

    def _pt(self, S):
        value, grad = pulling_away(S)
        return self.pt * value, grad.dtype.type(self.pt) * grad

    def scores(self, e_real, e_fake):
        """The mean energies, and r_t = mean sign(mean E(G(z)) − E(x)): +1 when D gives every real
        sample less energy than the fakes have on average."""
        return e_real.mean(), e_fake.mean(), xp_of(e_real).sign(e_fake.mean() - e_real).mean()

    labels = ("E(x)", "E(G(z))")
