"""DynamicLocalFilter / DynamicConv: theta layout, normalisation, bias and errors."""
import pytest
import torch

from dfn.layers import DynamicConv, DynamicLocalFilter
from dfn.ops import dynamic_conv, local_filter_reference, separable_local_filter

f64 = torch.float64


@pytest.mark.parametrize("kwargs,channels", [
    (dict(kernel_size=9, softmax=True), 81),
    (dict(kernel_size=11, softmax=True, bias_channels=1), 122),          # highway driving
    (dict(kernel_size=(1, 13), softmax=True, bias_channels=1), 14),      # stereo
    (dict(kernel_size=9, separable=True), 18),
    (dict(kernel_size=3, n_filters=4, in_channels=2, bias_channels=2), 4 * 2 * 9 + 2),
])
def test_theta_channels(kwargs, channels):
    assert DynamicLocalFilter(**kwargs).theta_channels == channels


def test_bias_is_added_before_softmax_filtering():
    layer = DynamicLocalFilter(11, softmax=True, bias_channels=1)
    x, theta = torch.randn(2, 1, 12, 12, dtype=f64), torch.randn(2, 122, 12, 12, dtype=f64)
    expected = local_filter_reference(x + theta[:, 121:], theta[:, :121], 11, softmax=True)
    torch.testing.assert_close(layer(x, theta), expected)
    filters, bias = layer.split(theta)
    torch.testing.assert_close(filters.sum(1), torch.ones(2, 12, 12, dtype=f64))
    assert torch.equal(bias, theta[:, 121:])


def test_general_form_layer():
    layer = DynamicLocalFilter(3, n_filters=2, in_channels=3)
    x, theta = torch.randn(1, 3, 6, 5, dtype=f64), torch.randn(1, 54, 6, 5, dtype=f64)
    filters, _ = layer.split(theta)
    assert filters.shape == (1, 2, 3, 9, 6, 5)
    torch.testing.assert_close(layer(x, theta), local_filter_reference(x, filters, 3))


def test_separable_layer_split_matches_forward():
    layer = DynamicLocalFilter((3, 5), softmax=True, separable=True)
    x, theta = torch.randn(2, 2, 7, 7, dtype=f64), torch.randn(2, 8, 7, 7, dtype=f64)
    filters, _ = layer.split(theta)
    assert filters.shape == (2, 15, 7, 7)
    torch.testing.assert_close(layer(x, theta), local_filter_reference(x, filters, (3, 5)))
    torch.testing.assert_close(layer(x, theta),
                               separable_local_filter(x, theta[:, :3], theta[:, 3:], softmax=True))


def test_wrong_theta_raises_naming_the_channel_count():
    layer = DynamicLocalFilter(9, softmax=True)
    with pytest.raises(ValueError, match="expects theta with 81 channels"):
        layer(torch.randn(1, 1, 8, 8), torch.randn(1, 80, 8, 8))
    with pytest.raises(ValueError, match=r"theta must be \(B, 81, H, W\) matching x"):
        layer(torch.randn(1, 1, 8, 8), torch.randn(1, 81, 8, 9))
    with pytest.raises(ValueError, match="in_channels"):
        DynamicLocalFilter(3, n_filters=2)


def test_dynamic_conv_layer_accepts_vector_or_1x1_theta():
    layer = DynamicConv(9)
    x, theta = torch.randn(3, 1, 16, 16, dtype=f64), torch.randn(3, 81, dtype=f64)
    expected = dynamic_conv(x, theta.view(3, 9, 9))
    torch.testing.assert_close(layer(x, theta), expected)
    torch.testing.assert_close(layer(x, theta[:, :, None, None]), expected)
    with pytest.raises(ValueError, match=r"theta must be \(B, 81\)"):
        layer(x, torch.randn(3, 81, 2, 2))
    assert "kernel_size=(9, 9)" in repr(layer)


def test_dynamic_conv_layer_bias_and_general_form():
    layer = DynamicConv(3, n_filters=2, in_channels=3, bias_channels=3, softmax=True)
    x, theta = torch.randn(2, 3, 8, 8, dtype=f64), torch.randn(2, 2 * 3 * 9 + 3, dtype=f64)
    filters, bias = layer.split(theta)
    assert filters.shape == (2, 2, 3, 3, 3) and bias.shape == (2, 3, 1, 1)
    torch.testing.assert_close(layer(x, theta), dynamic_conv(x + bias, filters))
