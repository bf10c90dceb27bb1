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
