"""Speed and memory of dynamic local filtering: our op against the unfold reference, in one run.

Prints JSON. For each (C, kernel): forward and forward+backward median times (and the
forward+backward minimum, less sensitive to other tenants of a shared machine), bytes autograd
saves for backward, and the op's bandwidth lower bound (bytes it must read and write / copy
bandwidth, measured again right before each case) with each implementation's ratio to it. Implementations: ``unfold_reference`` and
``ours_<backend>`` for each backend of :mod:`dfn.ops.backends` that runs on the device: ``c``
(the C kernel, the CPU default), ``loop`` (one multiply-accumulate per tap), ``blocks`` (row
blocks, few launches; the CUDA default) and ``triton`` (where the triton package is installed: on
CUDA, or on the CPU under ``TRITON_INTERPRET=1``, which checks the script, not the speed); with
``--compile`` also the reference and the portable backends under ``torch.compile``. ``--softmax``
passes logits (the models' case; the C and Triton kernels normalise them inside), and adds
``ours_c_unfused``: torch's softmax, then the C kernel on the normalised filters (the C backend's
path before its kernels took logits). ``--filters bfloat16`` makes the filters (logits) bfloat16
beside the float32 image, as the generator's output is under bf16 autocast (the bound counts their
two bytes). (Results before the backends existed call the C kernel ``ours_fused``.)

    python benchmarks/ops.py                      # B=16, 64x64, C in {1, 3}, 9x9 / 11x11 / 13x1
    python benchmarks/ops.py --compile            # also torch.compile'd variants (slow to compile)
    python benchmarks/ops.py --device cuda        # on a GPU
    python benchmarks/ops.py --softmax --filters bfloat16   # the models' case under bf16 autocast
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Callable

import torch

from dfn.ops import cpu_kernel, dynamic_local_filter, local_filter_reference
from dfn.ops.backends import resolve
from dfn.ops.profiling import copy_bandwidth, machine, saved_tensor_bytes, wall_seconds

Op = Callable[..., torch.Tensor]


def bound_bytes(x: torch.Tensor, f: torch.Tensor) -> dict[str, int]:
    """Bytes any implementation must move: forward reads x, f and writes out; backward reads
    dout, x, f and writes dx, df (out, dout, dx have x's size for shared filters)."""
    return {"forward": 2 * x.nbytes + f.nbytes, "forward_backward": 5 * x.nbytes + 3 * f.nbytes}


def runs_here(backend: str, device: torch.device) -> bool:
    """Whether ``backend`` can run the shared form on ``device``."""
    try:
        return resolve(backend, torch.zeros(1, device=device), shared=True) == backend
    except ValueError:
        return False


def with_options(op: Op, **options) -> Op:
    return lambda x, f, kernel: op(x, f, kernel, **options)


def measure(op: Op, x: torch.Tensor, f: torch.Tensor, kernel: tuple[int, int], repeats: int) -> dict:
    x, f = x.detach().requires_grad_(), f.detach().requires_grad_()
    dout = torch.randn_like(x)

    def forward():
        with torch.no_grad():
            op(x, f, kernel)

    def forward_backward():
        torch.autograd.grad(op(x, f, kernel), (x, f), dout)

    forward_s = wall_seconds(forward, repeats, device=x.device)
    forward_backward_s = wall_seconds(forward_backward, repeats, device=x.device)
    return {"forward_ms": 1e3 * statistics.median(forward_s),
            "forward_backward_ms": 1e3 * statistics.median(forward_backward_s),
            "forward_backward_min_ms": 1e3 * min(forward_backward_s),
            "saved_for_backward_bytes": saved_tensor_bytes(lambda: op(x, f, kernel))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd variants")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--softmax", action="store_true", help="filters are logits (as in the models)")
    parser.add_argument("--kernels", default="9x9,11x11,13x1", help="comma-separated KHxKW")
    parser.add_argument("--filters", choices=["float32", "bfloat16"], default="float32",
                        help="the filters' dtype beside the float32 image")
    args = parser.parse_args()
    device = torch.device(args.device)
    kernels = [tuple(int(k) for k in item.split("x")) for item in args.kernels.split(",")]
    torch.manual_seed(0)

    reference = with_options(local_filter_reference, softmax=args.softmax)
    implementations: dict[str, Op] = {"unfold_reference": reference}
    for backend in ("c", "loop", "blocks", "triton"):
        if runs_here(backend, device):
            implementations[f"ours_{backend}"] = with_options(
                dynamic_local_filter, softmax=args.softmax, backend=backend)
    if args.softmax and "ours_c" in implementations:
        implementations["ours_c_unfused"] = lambda x, f, kernel: dynamic_local_filter(
            x, torch.softmax(f, dim=1), kernel, backend="c")
    if args.compile:  # one compilation per (shape, grad mode, path): past dynamo's default of 8
        torch._dynamo.config.recompile_limit = 64
        implementations["unfold_reference_compiled"] = torch.compile(reference, dynamic=False)
        for backend in ("loop", "blocks", "triton"):
            if runs_here(backend, device):
                implementations[f"ours_{backend}_compiled"] = torch.compile(
                    implementations[f"ours_{backend}"], dynamic=False)

    bandwidth = copy_bandwidth(device=device)
    report = {"machine": {**machine(),
                          "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                          "fused_kernel_built": cpu_kernel.library() is not None,
                          "copy_bandwidth_GBps": bandwidth / 1e9},
              "dtype": "float32", "filter_dtype": args.filters, "softmax": args.softmax, "batch": args.batch, "height": args.size, "width": args.size,
              "repeats": args.repeats, "statistic": "median", "cases": []}
    for channels in (1, 3):
        for kernel in kernels:
            x = torch.randn(args.batch, channels, args.size, args.size, device=device)
            f = torch.randn(args.batch, kernel[0] * kernel[1], args.size, args.size, device=device,
                            dtype=getattr(torch, args.filters))
            case_bandwidth = copy_bandwidth(device=device)    # the machine now, beside the times
            bound = {k: v / case_bandwidth * 1e3 for k, v in bound_bytes(x, f).items()}
            case = {"channels": channels, "kernel": list(kernel), "copy_bandwidth_GBps": case_bandwidth / 1e9,
                    "input_plus_filter_bytes": x.nbytes + f.nbytes,
                    "bound_ms": {"forward": bound["forward"], "forward_backward": bound["forward_backward"]}}
            for name, op in implementations.items():
                result = measure(op, x, f, kernel, args.repeats)
                result["forward_backward_over_bound"] = result["forward_backward_ms"] / bound["forward_backward"]
                result["forward_backward_min_over_bound"] = (result["forward_backward_min_ms"]
                                                             / bound["forward_backward"])
                case[name] = result
            ref_ms = case["unfold_reference"]["forward_backward_ms"]
            case["speedup_forward_backward_vs_unfold"] = {
                name: ref_ms / case[name]["forward_backward_ms"] for name in implementations}
            report["cases"].append(case)
    print(json.dumps(report, indent=2))
    if device.type == "cpu" and not report["machine"]["fused_kernel_built"]:
        print("warning: the C kernel was not built, so ours_c is missing", file=sys.stderr)


if __name__ == "__main__":
    main()
