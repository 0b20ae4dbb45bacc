"""dfn.ops.profiling.ConvolutionLog: what the peer comparison's floor (``train_throughput.py
--convolutions``) is made of: every convolution of a step, forward and backward, and the
activation passes beside them, counted and replayed alone in their recorded layout."""
from collections import Counter

import torch
from torch import nn

from dfn.ops import profiling
from dfn.ops.profiling import ACTIVATIONS, ConvolutionLog


def test_records_each_forward_and_backward_call_with_its_layout_and_work():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1, stride=2))
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 16, 16).to(memory_format=torch.channels_last)
    with ConvolutionLog() as log:
        for _ in range(3):
            net(x).sum().backward()
    forward = {k: n for k, n in log.calls.items() if k[0] is torch.ops.aten.convolution.default}
    backward = {k: n for k, n in log.calls.items() if k[0] is torch.ops.aten.convolution_backward.default}
    assert sorted(forward.values()) == [3, 3] and sorted(backward.values()) == [3, 3]
    first_input = next(k[1][0] for k in forward if k[1][1][1] == (8, 3, 3, 3))
    assert first_input[1] == (2, 3, 16, 16) and first_input[2] == x.stride()    # channels-last kept
    # the first layer's input needs no gradient: its backward computes the weights' and bias' alone
    masks = sorted(k[1][-1] for k in backward)
    assert masks == [(False, True, True), (True, True, True)]
    assert log.multiply_adds() == 3 * (2 * 8 * 16 * 16 * 27 + 2 * 4 * 8 * 8 * 8)
    assert 0 < log.seconds_alone(repeats=1, warmup=0) < 10


def test_records_the_matrix_products_of_a_pointwise_conv():
    from dfn.layers import pointwise_conv
    x = torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(5, 3, 1, 1, requires_grad=True)
    with ConvolutionLog() as log:
        pointwise_conv(x, weight).sum().backward()
    products = [k for k in log.calls if k[0] in (torch.ops.aten.mm.default, torch.ops.aten.bmm.default)]
    assert len(products) >= 3                            # forward, input and weight gradients
    assert log.multiply_adds() == 0 and log.seconds_alone(repeats=1, warmup=0) > 0


def test_a_transposed_convolution_counts_each_input_pixels_taps():
    x = torch.randn(2, 3, 5, 5)
    weight = torch.randn(3, 4, 4, 4)                     # (C_in, C_out, kh, kw)
    with ConvolutionLog() as log:
        out = torch.nn.functional.conv_transpose2d(x, weight, stride=2, padding=1)
    assert out.shape == (2, 4, 10, 10)
    # 16 taps per input pixel and output channel = 4 per output pixel and input channel
    assert log.multiply_adds() == 2 * 3 * 25 * 4 * 16 == 2 * 4 * 100 * 3 * 4


def test_records_the_activation_passes_apart_from_the_convolutions(monkeypatch):
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                        nn.Conv2d(8, 4, 1), nn.LeakyReLU(0.1))
    x = torch.randn(2, 3, 16, 16)
    with ConvolutionLog() as log:
        for _ in range(2):
            net(x).sum().backward()
    activations = Counter()
    for (func, _), count in log.calls.items():
        if func in ACTIVATIONS:
            activations[func] += count
    aten = torch.ops.aten
    assert activations == {aten.leaky_relu_.default: 2, aten.leaky_relu.default: 2,
                           aten.leaky_relu_backward.default: 4}
    assert log.count(ACTIVATIONS) == 8 and log.count() == 8             # each group its own calls
    assert log.seconds_alone(ACTIVATIONS, repeats=1, warmup=0) > 0      # in-place ones replay too
    monkeypatch.setattr(profiling, "median_seconds", lambda *args: 1.0)
    assert log.seconds_alone(ACTIVATIONS) == 8                         # each call by its count
    assert log.seconds_alone() == 8                # 2 x (2 convolutions + their 2 backwards) alone
