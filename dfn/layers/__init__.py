"""nn.Modules around the ops: filter normalisation, dynamic bias, smoothness penalty, matching costs."""
from dfn.layers.dynamic_filter_layers import DynamicConv, DynamicLocalFilter
from dfn.layers.matching_costs import CostPrior, matching_costs
from dfn.layers.smoothness import FilterSmoothness, filter_smoothness
from dfn.layers.untied_bias_conv import UntiedBiasConv2d

__all__ = ["CostPrior", "DynamicConv", "DynamicLocalFilter", "FilterSmoothness", "UntiedBiasConv2d",
           "filter_smoothness", "matching_costs"]
