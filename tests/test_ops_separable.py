"""separable_local_filter equals the full filter that is the outer product of its factors."""
import pytest
import torch
from torch.autograd import gradcheck

from dfn.ops import local_filter_reference, separable_local_filter

f64 = torch.float64


@pytest.mark.parametrize("kh,kw", [(3, 3), (9, 9), (4, 2), (1, 5)])
@pytest.mark.parametrize("n", [None, 2])
@pytest.mark.parametrize("softmax", [False, True])
def test_equals_full_outer_product_filter(kh, kw, n, softmax):
    B, C, H, W = 2, 3, 9, 8
    lead = (B,) if n is None else (B, n, C)
    x = torch.randn(B, C, H, W, dtype=f64)
    v, h = torch.randn(*lead, kh, H, W, dtype=f64), torch.randn(*lead, kw, H, W, dtype=f64)
    ours = separable_local_filter(x, v, h, softmax=softmax)
    d = len(lead)
    if softmax:
        v, h = v.softmax(d), h.softmax(d)
    full = torch.einsum("...uyx,...vyx->...uvyx", v, h).flatten(d, d + 1)
    torch.testing.assert_close(ours, local_filter_reference(x, full, (kh, kw)), rtol=1e-12, atol=1e-12)


def test_gradcheck_with_softmax_and_bias():
    x = torch.randn(1, 2, 5, 4, dtype=f64, requires_grad=True)
    v = torch.randn(1, 3, 5, 4, dtype=f64, requires_grad=True)
    h = torch.randn(1, 2, 5, 4, dtype=f64, requires_grad=True)
    b = torch.randn(1, 1, 5, 4, dtype=f64, requires_grad=True)
    assert gradcheck(lambda x, v, h, b: separable_local_filter(x, v, h, softmax=True, bias=b),
                     (x, v, h, b))


def test_mismatched_forms_raise():
    with pytest.raises(ValueError, match="both be"):
        separable_local_filter(torch.randn(1, 1, 5, 5), torch.randn(1, 3, 5, 5),
                               torch.randn(1, 1, 1, 3, 5, 5))
