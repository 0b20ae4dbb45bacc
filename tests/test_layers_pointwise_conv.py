"""The generator's last 1x1 conv written as channel planes: the values and gradients of nn.Conv2d in
either input layout and under bf16 autocast, the output NCHW, the input's gradient in its layout."""
import pytest
import torch
from helpers import output_and_grads
from torch import nn

from dfn.layers.pointwise_conv import pointwise_conv
from dfn.nets import EncoderDecoder


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_the_conv_with_its_gradients(channels_last, bias):
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    conv = nn.Conv2d(6, 5, 1, bias=bias).double().to(memory_format=layout)
    x = torch.randn(3, 6, 7, 4, dtype=torch.double).to(memory_format=layout).requires_grad_()
    g = torch.randn(3, 5, 7, 4, dtype=torch.double)
    params = [x, *conv.parameters()]
    ours = output_and_grads(lambda: pointwise_conv(x, conv.weight, conv.bias), params, g)
    for a, b in zip(ours, output_and_grads(lambda: conv(x), params, g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert ours[0].is_contiguous()                                      # planes, whatever x's layout
    assert ours[1].stride() == x.stride()                                # x's gradient in x's layout


def test_gradcheck():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 2, 1).double()
    x = torch.randn(2, 3, 4, 5, dtype=torch.double).to(memory_format=torch.channels_last).requires_grad_()

    params = (x, conv.weight.detach().requires_grad_(), conv.bias.detach().requires_grad_())
    assert torch.autograd.gradcheck(pointwise_conv, params)


def test_under_bf16_autocast_as_the_conv():
    torch.manual_seed(2)
    conv = nn.Conv2d(64, 81, 1).to(memory_format=torch.channels_last)
    x = torch.randn(2, 64, 16, 16).to(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn(2, 81, 16, 16)
    params = [x, *conv.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = output_and_grads(lambda: pointwise_conv(x, conv.weight, conv.bias), params, g)
        theirs = output_and_grads(lambda: conv(x), params, g)
    assert ours[0].dtype == theirs[0].dtype == torch.bfloat16
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2 * b.float().abs().max().item())


@pytest.mark.parametrize("shape", [(2, 2, 3, 3), (2, 3, 1, 1), (2, 2)])
def test_other_weights_are_refused(shape):
    with pytest.raises(ValueError, match="needs 1x1 weights"):
        pointwise_conv(torch.randn(1, 2, 4, 4), torch.randn(shape))


def test_the_nets_theta_is_planes_in_a_channels_last_net():
    torch.manual_seed(3)
    net = EncoderDecoder(encoder=[4, 8], encoder_strides=[1, 2], decoder=[8], upsampled=[6],
                         head=[7, 9], recurrent_convs=1, image_size=16)
    x = torch.randn(2, 1, 16, 16)
    expected, _ = net(x)
    net = net.to(memory_format=torch.channels_last)
    theta, _ = net(x.to(memory_format=torch.channels_last))
    assert theta.is_contiguous()
    torch.testing.assert_close(theta, expected, rtol=1e-5, atol=1e-6)
