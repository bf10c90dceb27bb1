"""Losses. Each returns (value, gradient): value is a 0-d array on the input's backend
(no host transfer inside a training step), gradient has the input's shape."""
from .backend import xp_of
from .layers.activations import sigmoid


def _check_same_shape(name, a, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name}: expected targets of shape {tuple(a.shape)} (the input's) or a "
                         f"scalar, got {tuple(b.shape)}")


def bce_with_logits(logits, targets):
    """Binary cross-entropy on logits x with targets t in [0, 1], averaged over all elements.

    loss = mean(max(x, 0) - x·t + log(1 + exp(-|x|)))    (exact for any |x|: no overflow, no log 0)
    dloss/dx = (sigmoid(x) - t) / x.size
    """
    xp = xp_of(logits)
    t = xp.asarray(targets, dtype=logits.dtype)
    if t.ndim:
        _check_same_shape("bce_with_logits", logits, t)
    x = logits
    loss = xp.mean(xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x))))
    return loss, (sigmoid(x) - t) / x.size


def log_softmax(logits):
    """log softmax over axis 1, shifted by the row maximum so that exp never overflows."""
    xp = xp_of(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of integer class labels (N,) under softmax(logits) (N, K).

    loss = mean(−log softmax(x_n)[y_n]);   dloss/dx = (softmax(x) − onehot(y)) / N
    """
    xp = xp_of(logits)
    if logits.ndim != 2 or tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(f"softmax_cross_entropy: expected logits (N, K) and labels (N,), got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    logp = log_softmax(logits)
    rows = xp.arange(len(labels))
    grad = xp.exp(logp)
    grad[rows, labels] -= 1
    return -xp.mean(logp[rows, labels]), grad / len(labels)


def mse(pred, target):
    """loss = mean((p - t)²);  dloss/dp = 2 (p - t) / p.size."""
    xp = xp_of(pred, target)
    _check_same_shape("mse", pred, target)
    diff = pred - target
    return xp.mean(diff * diff), (2 / diff.size) * diff


def mmd(fake, real, sigmas=None, *, unbiased=False, check_finite=True):
    """MMD² between a generated batch and a real batch, with its gradient w.r.t. `fake`.

    Samples are flattened to vectors: fake (n, ...) and real (m, ...) with the same
    per-sample shape. `sigmas` defaults to minigan.kernels.default_sigmas(real) (a mixture
    of bandwidths around the median distance). Returns (value, dfake of fake's shape).
    """
    from .kernels import default_sigmas, mmd2

    if tuple(fake.shape[1:]) != tuple(real.shape[1:]):
        raise ValueError(f"mmd: expected samples of one shape, got fake {tuple(fake.shape)} "
                         f"and real {tuple(real.shape)}")
    X, Y = fake.reshape(len(fake), -1), real.reshape(len(real), -1)
    if sigmas is None:
        sigmas = default_sigmas(Y)
    value, dX = mmd2(X, Y, sigmas, unbiased=unbiased, check_finite=check_finite)
    return value, dX.reshape(fake.shape)


# ---- adversarial losses ------------------------------------------------------------------------
# Each is D's loss on its real logits s_r, D's loss on its fake logits s_f (the two add to L_D,
# and are taken in separate passes through D), and G's loss on s_f. Means run over all logits.
class NonSaturating:
    """DCGAN: L_D = softplus(−s_r) + softplus(s_f) (= BCE with targets 1 and 0); L_G = softplus(−s_f)."""
    name = "ns"

    @staticmethod
    def d_real(s):
        return bce_with_logits(s, 1.0)

    @staticmethod
    def d_fake(s):
        return bce_with_logits(s, 0.0)

    @staticmethod
    def g(s):
        return bce_with_logits(s, 1.0)


class Hinge:
    """SNGAN, BigGAN: L_D = mean relu(1 − s_r) + mean relu(1 + s_f); L_G = −mean s_f.
    ∂/∂s_r = −[s_r < 1]/N, ∂/∂s_f = [s_f > −1]/N, ∂L_G/∂s_f = −1/N."""
    name = "hinge"

    @staticmethod
    def d_real(s):
        xp = xp_of(s)
        return xp.maximum(1 - s, 0).mean(), -(s < 1).astype(s.dtype) / s.size

    @staticmethod
    def d_fake(s):
        xp = xp_of(s)
        return xp.maximum(1 + s, 0).mean(), (s > -1).astype(s.dtype) / s.size

    @staticmethod
    def g(s):
        return -s.mean(), xp_of(s).full(s.shape, -1 / s.size, s.dtype)


class LeastSquares:
    """Mao et al. 2017 (0-1 coding, on D's raw output): L_D = ½ mean (s_r − 1)² + ½ mean s_f²;
    L_G = ½ mean (s_f − 1)².  Gradients (s_r − 1)/N, s_f/N, (s_f − 1)/N."""
    name = "ls"

    @staticmethod
    def d_real(s):
        return ((s - 1) ** 2).mean() / 2, (s - 1) / s.size

    @staticmethod
    def d_fake(s):
        return (s * s).mean() / 2, s / s.size

    @staticmethod
    def g(s):
        return ((s - 1) ** 2).mean() / 2, (s - 1) / s.size


class Wasserstein:
    """WGAN's critic loss, meant with SpectralNorm for the Lipschitz bound: L_D = mean(−s_r) +
    mean s_f; L_G = −mean s_f.  Gradients −1/N, 1/N, −1/N."""
    name = "wgan"

    @staticmethod
    def d_real(s):
        return -s.mean(), xp_of(s).full(s.shape, -1 / s.size, s.dtype)

    @staticmethod
    def d_fake(s):
        return s.mean(), xp_of(s).full(s.shape, 1 / s.size, s.dtype)

    @staticmethod
    def g(s):
        return -s.mean(), xp_of(s).full(s.shape, -1 / s.size, s.dtype)


ADVERSARIAL = {loss.name: loss for loss in (NonSaturating, Hinge, LeastSquares, Wasserstein)}


def d_loss(loss, s_real, s_fake):
    """D's loss as a pair: (value, ∂/∂s_real, ∂/∂s_fake) for an adversarial loss above."""
    (v_r, d_r), (v_f, d_f) = loss.d_real(s_real), loss.d_fake(s_fake)
    return v_r + v_f, d_r, d_f


# ---- terms at D's features and D's output ------------------------------------------------------
def feature_matching(f_fake, f_real):
    """Salimans et al. 2016: mean over the K features of (mean_n f_fake − mean_n f_real)²,
    with its gradient w.r.t. f_fake: 2 (μ_fake − μ_real) / (K·N) for every sample."""
    a, b = f_fake.reshape(len(f_fake), -1), f_real.reshape(len(f_real), -1)
    diff = a.mean(axis=0) - b.mean(axis=0)
    grad = xp_of(a).broadcast_to(diff * (2 / (diff.size * len(a))), a.shape)
    return (diff * diff).mean(), grad.reshape(f_fake.shape).astype(f_fake.dtype)


class LeCam:
    """Tseng et al. 2021, a term of D's loss for limited data:
    R = mean(relu(s_r − α_F)²) + mean(relu(α_R − s_f)²), α_R and α_F moving averages (decay)
    of mean s_r and mean s_f, updated after each D step.
    ∂R/∂s_r = 2 relu(s_r − α_F)/N,  ∂R/∂s_f = −2 relu(α_R − s_f)/N."""

    def __init__(self, decay=0.99):
        if not 0 <= decay < 1:
            raise ValueError(f"LeCam: expected 0 <= decay < 1, got {decay!r}")
        self.decay = decay
        self.alpha_r = self.alpha_f = None  # 0-d arrays on the logits' backend, 0 until the first update

    def real(self, s):
        over = xp_of(s).maximum(s - self._anchor("alpha_f", s), 0)
        return (over * over).mean(), 2 * over / s.size

    def fake(self, s):
        under = xp_of(s).maximum(self._anchor("alpha_r", s) - s, 0)
        return (under * under).mean(), -2 * under / s.size

    def update(self, s_real, s_fake):
        d = self.decay
        self.alpha_r = d * self._anchor("alpha_r", s_real) + (1 - d) * s_real.mean()
        self.alpha_f = d * self._anchor("alpha_f", s_fake) + (1 - d) * s_fake.mean()

    def _anchor(self, name, like):
        a = getattr(self, name)
        return xp_of(like).zeros((), like.dtype) if a is None else a

    def state_dict(self):
        return {k: getattr(self, k) for k in ("alpha_r", "alpha_f") if getattr(self, k) is not None}

    def load_state_dict(self, state):
        for k in ("alpha_r", "alpha_f"):
            setattr(self, k, state.get(k))
