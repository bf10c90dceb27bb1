"""Conv2D and ConvTranspose2D against plain loops, shape formulas, and their adjointness."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference import conv2d_loops, conv_transpose2d_loops

from minigan.kernels import im2col_numba
from minigan.layers import Conv2D, ConvTranspose2D, col2im, im2col, reference_mode
from minigan.layers import conv as conv_module
from minigan.kernels import threads
from minigan.layers.conv import batch_shares, col2im_sliced, conv_output_size, im2col_sliced

dims = dict(n=st.integers(1, 3), cin=st.integers(1, 4), cout=st.integers(1, 4), h=st.integers(1, 9),
            w=st.integers(1, 9), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2),
            seed=st.integers(0, 2 ** 31 - 1))


@settings(max_examples=30)  # each example loops in Python (or compiles a new row length)
@given(**dims)
def test_conv2d_matches_loops(n, cin, cout, h, w, k, s, p, seed):
    assume(min(h, w) + 2 * p >= k)
    rng = np.random.default_rng(seed)
    layer = Conv2D(cin, cout, k, stride=s, padding=p, rng=rng).to(np, np.float64)
    x = rng.standard_normal((n, cin, h, w))
    y = layer.forward(x)
    ref = conv2d_loops(x, layer.params["W"], layer.params["b"], s, p)
    assert y.shape == ref.shape == (n, cout, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=30)  # each example loops in Python (or compiles a new row length)
@given(op=st.data(), **dims)
def test_conv_transpose2d_matches_loops(n, cin, cout, h, w, k, s, p, seed, op):
    op = op.draw(st.integers(0, s - 1))
    ho, wo = (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op
    assume(min(ho, wo) >= 1)
    rng = np.random.default_rng(seed)
    layer = ConvTranspose2D(cin, cout, k, stride=s, padding=p, output_padding=op, rng=rng).to(np, np.float64)
    x = rng.standard_normal((n, cin, h, w))
    y = layer.forward(x)
    ref = conv_transpose2d_loops(x, layer.params["W"], layer.params["b"], s, p, op)
    assert y.shape == ref.shape == (n, cout, ho, wo)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=30)  # each example loops in Python (or compiles a new row length)
@given(op=st.data(), **dims)
def test_adjoint_identity(n, cin, cout, h, w, k, s, p, seed, op):
    """<conv(x), y> = <x, convT(y)> when both use the same W (no bias)."""
    assume(min(h, w) + 2 * p >= k)
    rng = np.random.default_rng(seed)
    conv = Conv2D(cin, cout, k, stride=s, padding=p, bias=False, rng=rng).to(np, np.float64)
    # output_padding recovers the rows that conv's floor division dropped
    op_h, op_w = (h + 2 * p - k) % s, (w + 2 * p - k) % s
    assume(op_h == op_w)
    convT = ConvTranspose2D(cout, cin, k, stride=s, padding=p, output_padding=op_h, bias=False).to(np, np.float64)
    convT.params["W"] = conv.params["W"]  # (out, in, k, k) of conv is (in, out, k, k) of convT
    x = rng.standard_normal((n, cin, h, w))
    cx = conv.forward(x)
    y = rng.standard_normal(cx.shape)
    cty = convT.forward(y)
    assert cty.shape == x.shape
    np.testing.assert_allclose(np.sum(cx * y), np.sum(x * cty), rtol=1e-12, atol=1e-13 * np.sum(np.abs(cx * y)))


@settings(max_examples=25)
@given(n=st.integers(2, 7), per_span=st.integers(1, 3), workers=st.integers(1, 3), transposed=st.booleans(),
       param_grads=st.booleans(), cin=st.integers(1, 4), cout=st.integers(1, 4), h=st.integers(3, 8),
       s=st.integers(1, 2), seed=st.integers(0, 2 ** 31 - 1))
def test_a_batch_in_shares_and_spans_gives_what_the_whole_batch_gives(n, per_span, workers, transposed, param_grads,
                                                                      cin, cout, h, s, seed):
    """NumPy's fast path splits a batch into a share per worker thread and each share into spans
    of a few samples (CHUNK_BYTES), summing dW over spans and shares; reference mode runs it
    whole. Output, dx and every gradient agree (float64)."""
    rng = np.random.default_rng(seed)
    k, p = 3, 1
    if transposed:
        layer = ConvTranspose2D(cin, cout, k, stride=s, padding=p, output_padding=s - 1, rng=rng).to(np, np.float64)
        col_per_sample = cout * k * k * h * h * 8
    else:
        layer = Conv2D(cin, cout, k, stride=s, padding=p, rng=rng).to(np, np.float64)
        col_per_sample = cin * k * k * conv_output_size(h, k, s, p) ** 2 * 8
    x = rng.standard_normal((n, cin, h, h))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_module, "CHUNK_BYTES", per_span * col_per_sample)
        patch.setattr(threads, "workers", lambda: workers)
        patch.setattr(threads, "_pool", {})  # a pool made here (of `workers` threads) is dropped after
        shares = batch_shares(x, col_per_sample)
        spans = [span for share in shares for span in share]
        assert len(shares) == min(workers, n) and all(shares)
        assert [lo for lo, _ in spans] == [0] + [hi for _, hi in spans[:-1]] and spans[-1][1] == n
        assert all(0 < hi - lo <= per_span for lo, hi in spans)
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape)
        dx = layer.backward(dy, param_grads)
    grads = {key: g.copy() for key, g in layer.grads.items()}
    with reference_mode():
        assert batch_shares(x, col_per_sample) == [[(0, n)]]
        np.testing.assert_allclose(layer.forward(x), y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.backward(dy, param_grads), dx, rtol=1e-12, atol=1e-12)
    for key, g in grads.items():
        np.testing.assert_allclose(layer.grads[key], g, rtol=1e-12, atol=1e-12, err_msg=key)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 8), st.integers(1, 8), st.integers(1, 4),
       st.integers(1, 3), st.integers(0, 2), st.integers(0, 2 ** 31 - 1))
def test_col2im_is_the_adjoint_of_im2col(n, c, h, w, k, s, p, seed):
    assume(min(h, w) + 2 * p >= k)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    col = im2col(x, k, s, p)
    r = rng.standard_normal(col.shape)
    # two sums of products that may cancel: their rounding is relative to the terms' sizes, not the total
    np.testing.assert_allclose(np.sum(col * r), np.sum(x * col2im(r, x.shape, s, p)), rtol=1e-12,
                               atol=1e-13 * np.sum(np.abs(col * r)))


def check_compiled_equals_slices(x, k, s, p, rng):
    """im2col/col2im (the compiled loops on NumPy) against the strided slices that define them
    (the CuPy path): the two must agree exactly (same copies, same order of additions)."""
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)
    col = im2col(x, k, s, p)
    assert col.dtype == x.dtype and col.shape == (c, k, k, n, ho, wo)
    np.testing.assert_array_equal(col, im2col_sliced(x, k, s, p, np.empty_like(col)))
    r = rng.standard_normal(col.shape).astype(x.dtype)
    back = col2im(r, x.shape, s, p)
    assert back.dtype == x.dtype and back.flags.c_contiguous
    np.testing.assert_array_equal(back, col2im_sliced(r, x.shape, s, p))


@settings(max_examples=30)  # each example loops in Python (or compiles a new row length)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 5),
       st.integers(1, 3), st.integers(0, 2), st.sampled_from([np.float32, np.float64]), st.booleans(),
       st.integers(0, 2 ** 31 - 1))
def test_compiled_im2col_col2im_equal_the_slices(n, c, h, w, k, s, p, dtype, transposed, seed):
    """Short rows (W' < SHORT_ROW): loops compiled for each (stride, W') these shapes draw."""
    assume(min(h, w) + 2 * p >= k)
    assert conv_output_size(w, k, s, p) < im2col_numba.SHORT_ROW
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    if transposed:  # a non-contiguous view with the same values
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    check_compiled_equals_slices(x, k, s, p, rng)


@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 6), st.integers(0, 20), st.integers(1, 5),
       st.integers(1, 3), st.integers(0, 2), st.sampled_from([np.float32, np.float64]), st.integers(0, 2 ** 31 - 1))
def test_compiled_im2col_col2im_equal_the_slices_on_long_rows(n, c, h, extra, k, s, p, dtype, seed):
    """Long rows (W' >= SHORT_ROW): the loops with stride and row length read at run time."""
    w = s * (im2col_numba.SHORT_ROW - 1) + k - 2 * p + extra  # gives W' >= SHORT_ROW
    assume(h + 2 * p >= k)
    assert conv_output_size(w, k, s, p) >= im2col_numba.SHORT_ROW
    rng = np.random.default_rng(seed)
    check_compiled_equals_slices(rng.standard_normal((n, c, h, w)).astype(dtype), k, s, p, rng)


def test_im2col_refuses_an_out_it_cannot_fill():
    x = np.zeros((2, 3, 6, 6), np.float32)
    good = im2col(x, 3, 1, 1)  # (3, 3, 3, 2, 6, 6)
    for bad in (np.empty((3, 3, 3, 2, 6, 5), np.float32), np.empty(good.shape, np.float64),
                np.empty(good.shape[::-1], np.float32).T):
        with pytest.raises(ValueError, match=r"im2col: expected out .*\(3, 3, 3, 2, 6, 6\)"):
            im2col(x, 3, 1, 1, out=bad)


def test_dcgan_upsampling_shapes():
    """The DCGAN generator's 7 -> 14 -> 28 -> 28, PyTorch's formulas."""
    up = ConvTranspose2D(8, 4, 5, stride=2, padding=2, output_padding=1)
    same = ConvTranspose2D(4, 1, 5, padding=2)
    assert up.output_shape((2, 8, 7, 7)) == (2, 4, 14, 14)
    assert up.output_shape((2, 8, 14, 14)) == (2, 4, 28, 28)
    assert same.output_shape((2, 4, 28, 28)) == (2, 1, 28, 28)
    down = Conv2D(1, 4, 5, stride=2, padding=2)
    assert down.output_shape((2, 1, 28, 28)) == (2, 4, 14, 14)
    assert down.output_shape((2, 1, 14, 14)) == (2, 4, 7, 7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_compute_in_their_dtype(dtype):
    layer = Conv2D(2, 3, 3, padding=1).to(np, dtype)
    x = np.ones((2, 2, 5, 5), dtype)
    y = layer.forward(x)
    assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype
    assert all(g.dtype == dtype for g in layer.grads.values())


@pytest.mark.parametrize("make", [lambda: Conv2D(3, 4, 3, stride=2, padding=1),
                                  lambda: ConvTranspose2D(3, 4, 3, stride=2, padding=1, output_padding=1)])
def test_reused_column_buffers_never_leak_into_results(make):
    """Column buffers are kept between calls (minigan.layers.base.scratch). Outputs and gradients must
    be fresh arrays, and a layer that has run on other shapes must give what a new layer gives."""
    rng = np.random.default_rng(0)
    used, new = make(), make()
    new.params = {k: v.copy() for k, v in used.params.items()}
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    for shape in [(5, 3, 9, 7), (2, 3, 6, 6)]:  # other shapes first: the buffers hold their values
        used.forward(rng.standard_normal(shape).astype(np.float32))
    y = used.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = used.backward(dy)
    grads = {k: g.copy() for k, g in used.grads.items()}
    y_kept, dx_kept = y.copy(), dx.copy()
    used.forward(rng.standard_normal(x.shape).astype(np.float32))  # overwrites the buffers
    used.backward(dy)
    np.testing.assert_array_equal(y, y_kept)
    np.testing.assert_array_equal(dx, dx_kept)
    np.testing.assert_array_equal(y, new.forward(x))
    np.testing.assert_array_equal(dx, new.backward(dy))
    for k in grads:
        np.testing.assert_array_equal(grads[k], new.grads[k])
