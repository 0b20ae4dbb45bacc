"""The steerable model: the paper's parameter count, shapes, and clear configuration errors."""
import math

import pytest
import torch

from dfn.models import ConfigError, SteerableFilterModel
from dfn.nets import PixelMLP


def test_paper_parameter_count():
    model = SteerableFilterModel(PixelMLP(1, [64, 128], 81))
    assert sum(p.numel() for p in model.parameters()) == 18_897


def test_forward_shapes_and_filter_use():
    model = SteerableFilterModel(PixelMLP(1, [8], 81))
    image, angle = torch.randn(3, 1, 12, 12), torch.rand(3) * 2 * math.pi
    out, filters = model(image, angle)
    assert out.shape == (3, 1, 12, 12) and filters.shape == (3, 9, 9)
    # the output is the image filtered with the generated filter of its own angle
    single, _ = model(image[1:2], angle[1:2])
    torch.testing.assert_close(out[1:2], single)


def test_filter_size_the_net_cannot_produce():
    with pytest.raises(ConfigError, match="kernel_size 7 needs 49 filter values per angle, but the filter-generating net produces 81"):
        SteerableFilterModel(PixelMLP(1, [8], 81), kernel_size=7)


def test_negative_learning_rate_is_named():
    with pytest.raises(ConfigError, match="Invalid learning rate"):
        SteerableFilterModel(PixelMLP(1, [8], 81), optimizer=lambda p: torch.optim.Adam(p, lr=-1.0))
