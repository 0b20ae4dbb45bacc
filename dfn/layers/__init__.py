"""nn.Modules around the ops: filter normalisation, dynamic bias, smoothness penalty, matching costs;
the 3x3 conv of a nearest-upsampled image computed at the low resolution; the 1x1 conv that writes
channel planes."""
from dfn.layers.dynamic_filter_layers import DynamicConv, DynamicLocalFilter
from dfn.layers.matching_costs import CostPrior, matching_costs
from dfn.layers.pointwise_conv import pointwise_conv
from dfn.layers.smoothness import FilterSmoothness, filter_smoothness
from dfn.layers.untied_bias_conv import UntiedBiasConv2d
from dfn.layers.upsampled_conv import upsampled_conv

__all__ = ["CostPrior", "DynamicConv", "DynamicLocalFilter", "FilterSmoothness", "UntiedBiasConv2d",
           "filter_smoothness", "matching_costs", "pointwise_conv", "upsampled_conv"]
