"""Dynamic filtering ops: pure tensor functions with their own autograd, no Lightning here."""
from dfn.ops.backends import BACKENDS
from dfn.ops.dynamic_conv import dynamic_conv
from dfn.ops.geometry import KernelSize, kernel_hw
from dfn.ops.local_filter import dynamic_local_filter
from dfn.ops.reference import local_filter_reference
from dfn.ops.separable import separable_local_filter

__all__ = ["BACKENDS", "KernelSize", "dynamic_conv", "dynamic_local_filter", "kernel_hw",
           "local_filter_reference", "separable_local_filter"]
