"""The 3x3 conv of a nearest-upsampled image computed at the low resolution: the values and
gradients of upsampling first, at any scale and size."""
import pytest
import torch
from helpers import output_and_grads
from torch import nn

from dfn.layers.upsampled_conv import upsampled_conv
from dfn.nets import EncoderDecoder


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_conv_of_the_upsampled_image_with_its_gradients(scale, bias):
    torch.manual_seed(scale)
    conv = nn.Conv2d(5, 4, 3, padding=1, bias=bias).double()
    x = torch.randn(2, 5, 7, 6, dtype=torch.double, requires_grad=True)
    g = torch.randn(2, 4, 7 * scale, 6 * scale, dtype=torch.double)
    params = [x, *conv.parameters()]
    ours = output_and_grads(lambda: upsampled_conv(x, conv, scale), params, g)
    upsampled_first = output_and_grads(
        lambda: conv(nn.functional.interpolate(x, scale_factor=scale, mode="nearest")), params, g)
    for a, b in zip(ours, upsampled_first):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("conv,scale", [(nn.Conv2d(2, 2, 5, padding=2), 2), (nn.Conv2d(2, 2, 3), 2),
                                        (nn.Conv2d(2, 2, 3, padding=1), 1)])
def test_other_convs_are_refused(conv, scale):
    with pytest.raises(ValueError, match="plain 3x3 conv with padding 1 and scale >= 2"):
        upsampled_conv(torch.randn(1, 2, 4, 4), conv, scale)


@pytest.mark.parametrize("upsampled", [[6, 5], []])
def test_the_nets_decoder_gives_the_upsample_first_values(upsampled):
    """EncoderDecoder.decode (the first upsampled conv at the low resolution) against the same
    layers run on the upsampled image, in float32 as the models train."""
    torch.manual_seed(0)
    net = EncoderDecoder(encoder=[4, 8], encoder_strides=[1, 2], decoder=[8], upsampled=upsampled,
                         head=[7, 9], recurrent_convs=0, image_size=16)
    h = torch.randn(3, 8, 8, 8)
    y = net.act(net.decoder[0](h))
    y = nn.functional.interpolate(y, scale_factor=2, mode="nearest")
    for layer in [*net.upsampled, net.head[0]]:
        y = net.act(layer(y))
    expected = net.head[1](y)
    torch.testing.assert_close(net.decode(h), expected, rtol=1e-5, atol=1e-6)


def test_channels_last_input_gives_channels_last_output():
    """The models run channels-last (``model.channels_last``): the upsampled conv hands the next
    conv its output in that layout, with no conversion between them."""
    conv = nn.Conv2d(4, 6, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(2, 4, 5, 5).to(memory_format=torch.channels_last)
    out = upsampled_conv(x, conv, 2)
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected = conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
