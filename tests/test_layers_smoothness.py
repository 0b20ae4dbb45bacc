import pytest
import torch

from dfn.layers import FilterSmoothness, filter_smoothness


def test_constant_field_has_zero_penalty():
    f = torch.randn(2, 9, 1, 1).expand(2, 9, 6, 7)
    assert filter_smoothness(f).item() == 0


def test_known_value():
    """One vertical edge between two filters at squared distance 2 (taps differ by 1 in 2 of 9)."""
    f = torch.zeros(1, 9, 4, 4)
    f[:, :2, :, 2:] = 1
    # horizontal pairs: 4 rows x 3 pairs, one crossing per row -> 4 * 2 / 12; vertical: 0
    torch.testing.assert_close(filter_smoothness(f), torch.tensor(0.5 * 8 / 12))


def test_module_weight():
    f = torch.randn(2, 9, 5, 5, requires_grad=True)
    assert FilterSmoothness(0.0)(f).item() == 0
    loss = FilterSmoothness(0.5)(f)
    torch.testing.assert_close(loss, 0.5 * filter_smoothness(f))
    loss.backward()
    assert f.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=">= 0"):
        FilterSmoothness(-1.0)
