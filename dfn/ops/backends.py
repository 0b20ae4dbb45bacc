"""Which implementation of dynamic local filtering runs where: the one table and the one ``auto`` rule.

Every backend computes the same values (each is tested against the unfold oracle); they differ in
what they cover and in speed:

============  =====================================  ===========================================
backend       runs                                   why / when
============  =====================================  ===========================================
``"c"``       shared form; CPU tensors (half types   fused C kernels (:mod:`dfn.ops.cpu_kernel`),
              in float32); needs a C compiler        the fastest on the CPU (``results/ops_cpu.md``)
``"loop"``    everything (any form, dtype, device)   one multiply-accumulate per tap
                                                     (:mod:`dfn.ops.tap_loop`): in cache on the CPU,
                                                     but one launch per tap on a GPU
``"blocks"``  everything                             a few launches per call whatever the filter
                                                     size (:mod:`dfn.ops.tap_blocks`), for GPUs
``"triton"``  shared form; CUDA tensors (CPU ones    fused Triton kernels, softmax and bias inside
              under ``TRITON_INTERPRET=1``); needs   (:mod:`dfn.ops.triton_kernels`); first-order
              the ``triton`` package                 gradients only
============  =====================================  ===========================================

``"auto"`` (:func:`resolve`): ``"c"`` where it runs, else ``"blocks"`` on CUDA, else ``"loop"``
(also on devices such as Apple's MPS, whose ``F.fold`` support varies). ``"triton"`` is chosen
explicitly until a GPU measurement shows it faster there (``benchmarks/gpu_run.sh``).
"""
from __future__ import annotations

from types import ModuleType

from torch import Tensor

from dfn.ops import cpu_kernel

BACKENDS = ("auto", "c", "loop", "blocks", "triton")
TRITON_MIN = (3, 3)    # the kernels' language and interpreter (torch >= 2.7 pairs with it)


def triton_ops() -> ModuleType:
    """:mod:`dfn.ops.triton_kernels`, imported on first use (``triton`` is optional)."""
    try:
        import triton
    except ModuleNotFoundError:
        triton = None
    found = tuple(int(part) for part in triton.__version__.split(".")[:2]) if triton else None
    if found is None or found < TRITON_MIN:
        have = f" (found {triton.__version__})" if triton else ""
        raise ValueError(f"backend 'triton' needs triton >= {'.'.join(map(str, TRITON_MIN))}{have}: "
                         "pip install -e '.[triton]' (or pick another backend)")
    from dfn.ops import triton_kernels
    return triton_kernels


def resolve(backend: str, x: Tensor, shared: bool) -> str:
    """The backend that runs ``x`` with shared (``shared=True``) or general filters.

    Raises ``ValueError`` for an unknown name, or one that cannot run these tensors (saying why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        if shared and cpu_kernel.usable(x):
            return "c"
        return "blocks" if x.is_cuda else "loop"
    if backend in ("c", "triton") and not shared:
        raise ValueError(f"backend {backend!r} runs filters shared across channels only "
                         "((B, kh*kw, H, W)); use 'loop' or 'blocks' for the general form")
    if backend == "c" and not cpu_kernel.usable(x):
        raise ValueError(f"backend 'c' runs floating-point CPU tensors with a C compiler present; "
                         f"got {x.dtype} on {x.device}"
                         + ("" if cpu_kernel.library() is not None else " and no compiler")
                         + ": use 'auto'")
    if backend == "triton" and not triton_ops().usable(x):
        raise ValueError(f"backend 'triton' runs CUDA tensors (CPU ones only under "
                         f"TRITON_INTERPRET=1); got a tensor on {x.device}: use 'auto'")
    return backend
