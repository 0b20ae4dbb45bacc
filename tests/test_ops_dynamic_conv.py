"""dynamic_conv equals dynamic local filtering with the same filter at every pixel."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from dfn.ops import dynamic_conv, local_filter_reference

f64 = torch.float64


@pytest.mark.parametrize("kh,kw", [(3, 3), (9, 9), (4, 4), (1, 13), (2, 3)])
@pytest.mark.parametrize("softmax", [False, True])
def test_shared_form_equals_local_filter_with_repeated_filter(kh, kw, softmax):
    x, f = torch.randn(3, 2, 10, 14, dtype=f64), torch.randn(3, kh, kw, dtype=f64)
    field = f.flatten(1)[:, :, None, None].expand(3, kh * kw, 10, 14)
    expected = local_filter_reference(x, field, (kh, kw), softmax=softmax)
    torch.testing.assert_close(dynamic_conv(x, f, softmax=softmax), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kh,kw", [(3, 3), (4, 2)])
def test_general_form_equals_local_filter_with_repeated_filter(kh, kw):
    x, f = torch.randn(2, 3, 7, 6, dtype=f64), torch.randn(2, 4, 3, kh, kw, dtype=f64)
    field = f.flatten(3)[..., None, None].expand(2, 4, 3, kh * kw, 7, 6)
    out = dynamic_conv(x, f)
    assert out.shape == (2, 4, 7, 6)
    torch.testing.assert_close(out, local_filter_reference(x, field, (kh, kw)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 2), (1, 2, 2, 3, 3)])
def test_gradcheck(shape):
    x = torch.randn(shape[0], 2, 5, 6, dtype=f64, requires_grad=True)
    f = torch.randn(shape, dtype=f64, requires_grad=True)
    op = lambda x, f: dynamic_conv(x, f, softmax=True)  # noqa: E731
    assert gradcheck(op, (x, f)) and gradgradcheck(op, (x, f))


@pytest.mark.parametrize("f_shape", [(2, 9), (3, 3, 3), (2, 1, 2, 3, 3), (2, 1, 1, 1, 3, 3)])
def test_wrong_shapes_raise(f_shape):
    with pytest.raises(ValueError, match=r"\(B, kh, kw\) = \(2, kh, kw\) or \(B, n, C, kh, kw\)"):
        dynamic_conv(torch.randn(2, 1, 8, 8), torch.randn(f_shape))
