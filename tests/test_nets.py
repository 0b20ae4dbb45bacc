"""Filter-generating networks: the paper's parameter counts, shapes, recurrence and init."""
import pytest
import torch

from dfn.layers import UntiedBiasConv2d
from dfn.nets import EncoderDecoder, PixelMLP

PAPER_NETS = {  # the paper's networks (dfn.nets.encoder_decoder) and the parameter counts it reports
    "moving_mnist": (dict(), 637_361),
    "highway": (dict(in_channels=2, encoder=[32, 32, 64, 64], encoder_strides=[1, 2, 1, 1],
                     untied_bias=[0], decoder=[64], upsampled=[32, 64], head=[128, 122]), 368_122),
    "stereo": (dict(untied_bias=[4], recurrent_convs=0, head=[128, 14]), 464_494),
}


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", PAPER_NETS)
def test_paper_parameter_counts(name):
    kwargs, count = PAPER_NETS[name]
    assert n_params(EncoderDecoder(**kwargs)) == count


def test_pixel_mlp_count_and_shape():
    mlp = PixelMLP(1, [64, 128], 81)
    assert n_params(mlp) == 18_897 and mlp(torch.randn(3, 1, 1, 1)).shape == (3, 81, 1, 1)


def test_shapes_and_recurrence():
    net = EncoderDecoder(encoder=[4, 4, 8], encoder_strides=[1, 2, 1], decoder=[4], upsampled=[4],
                         head=[6], image_size=16)
    x = torch.randn(2, 1, 16, 16)
    theta, h = net(x)
    assert theta.shape == (2, 6, 16, 16) and h.shape == (2, 8, 8, 8)
    theta2, _ = net(x, h)
    assert not torch.allclose(theta, theta2)             # the state changes the output
    zeros, _ = net(x, torch.zeros_like(h))
    torch.testing.assert_close(theta, zeros)             # h_0 = 0


def test_feed_forward_has_no_state_and_init_is_he_uniform_with_zero_biases():
    net = EncoderDecoder(recurrent_convs=0, untied_bias=[4], head=[128, 14])
    assert net(torch.randn(1, 1, 64, 64))[1] is None
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.bias is None or not m.bias.any() for m in convs)
    untied = [m for m in net.modules() if isinstance(m, UntiedBiasConv2d)]
    assert len(untied) == 1 and untied[0].untied_bias.shape == (128, 32, 32)
    w = convs[1].weight                                  # 32 -> 32, 3x3: bound sqrt(6 / ((1 + a^2) fan_in))
    bound = (6 / ((1 + 0.01 ** 2) * 32 * 9)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


def test_wrong_image_size_for_untied_bias_is_named():
    net = EncoderDecoder(recurrent_convs=0, untied_bias=[0], image_size=64)
    with pytest.raises(ValueError, match="image_size"):
        net(torch.randn(1, 1, 32, 32))


def test_the_zero_state_update_runs_once_for_the_batch_and_changes_nothing():
    """``hidden=None`` (h_0 = 0) runs the recurrent convs on one zero sample and broadcasts it:
    the state, and every parameter's gradient, equal those from a batch of explicit zeros."""
    torch.manual_seed(0)
    net = EncoderDecoder(encoder=[4, 8], encoder_strides=[1, 2], decoder=[8], upsampled=[4],
                         head=[8, 9], image_size=16)
    for p in net.recurrent.parameters():           # non-zero biases: R(0) is not zero
        torch.nn.init.normal_(p)
    x = torch.rand(3, 1, 16, 16)
    results = []
    for hidden in (None, torch.zeros(3, 8, 8, 8)):
        net.zero_grad()
        h = net.encode(x, hidden)
        h.square().sum().backward()
        results.append([h, *(p.grad.clone() for p in net.parameters() if p.grad is not None)])
    for once, per_sample in zip(*results):           # to the convolutions' summation order
        torch.testing.assert_close(once, per_sample, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("negative_slope", [0.01, -0.5])
def test_in_place_activations_give_the_out_of_place_values_and_gradients(negative_slope):
    """The activations overwrite their convs' outputs where the slope allows it (>= 0): the
    outputs and every gradient equal those of out-of-place activations, through the recurrence."""
    torch.manual_seed(0)
    net = EncoderDecoder(encoder=[4, 8], encoder_strides=[1, 2], decoder=[8], upsampled=[4, 4],
                         head=[8, 9], image_size=16, negative_slope=negative_slope).double()
    assert net.act.inplace == (negative_slope >= 0)
    x = torch.rand(3, 2, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    results = []
    for inplace in (net.act.inplace, False):
        net.act.inplace = inplace
        net.zero_grad()
        x.grad = None
        theta, h = net(x[:, 0])
        theta2, _ = net(x[:, 1], h)
        (theta.square().sum() + theta2.sin().sum()).backward()
        results.append([theta, theta2, x.grad.clone(), *(p.grad.clone() for p in net.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
