"""nn.Modules around the ops: filter normalisation, dynamic bias, smoothness penalty."""
from dfn.layers.dynamic_filter import DynamicConv, DynamicLocalFilter
from dfn.layers.smoothness import FilterSmoothness, filter_smoothness

__all__ = ["DynamicConv", "DynamicLocalFilter", "FilterSmoothness", "filter_smoothness"]
