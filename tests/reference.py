"""Plain-loop oracles, written from the definitions, to test the fast code against."""
import numpy as np


def conv2d_loops(x, W, b, stride, padding):
    """y[n,o,i,j] = b[o] + Σ_{c,u,v} W[o,c,u,v] x_pad[n, c, i*s + u, j*s + v]."""
    N, C, H, Wd = x.shape
    O, _, k, _ = W.shape
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    Ho, Wo = (H + 2 * p - k) // s + 1, (Wd + 2 * p - k) // s + 1
    y = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            for i in range(Ho):
                for j in range(Wo):
                    y[n, o, i, j] = np.sum(xp[n, :, i * s:i * s + k, j * s:j * s + k] * W[o])
            y[n, o] += 0 if b is None else b[o]
    return y


def conv_transpose2d_loops(x, W, b, stride, padding, output_padding):
    """Each input pixel scatters x[n,c,h,w]·W[c,o,:,:] onto output rows h*s − p + u, cols w*s − p + v."""
    N, C, H, Wd = x.shape
    _, O, k, _ = W.shape
    s, p = stride, padding
    Ho = (H - 1) * s - 2 * p + k + output_padding
    Wo = (Wd - 1) * s - 2 * p + k + output_padding
    full = np.zeros((N, O, Ho + 2 * p + k, Wo + 2 * p + k))
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(Wd):
                    full[n, :, h * s:h * s + k, w * s:w * s + k] += x[n, c, h, w] * W[c]
    y = full[:, :, p:p + Ho, p:p + Wo]
    return y + (0 if b is None else b[None, :, None, None])


def gaussian_kernel_loops(X, Y, sigmas):
    """K[i, j] = Σ_s exp(−‖x_i − y_j‖² / (2σ_s²)), in float64, one pair at a time."""
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    K = np.zeros((len(X), len(Y)))
    for i in range(len(X)):
        for j in range(len(Y)):
            d = X[i] - Y[j]
            d2 = float(np.dot(d, d))
            K[i, j] = sum(np.exp(-d2 / (2 * s * s)) for s in sigmas)
    return K
