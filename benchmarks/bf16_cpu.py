"""Whether bfloat16 pays on this CPU: one 3x3 convolution of the DFN's size and the dynamic local
filter, forward + backward, in float32 and under bf16 autocast (as ``--trainer.precision
bf16-mixed`` runs them). Prints JSON naming the CPU and whether it has native bfloat16.

    python benchmarks/bf16_cpu.py > results/bf16_cpu.json

Without native bfloat16 (AVX512-BF16, AMX or ARM BF16) PyTorch runs bf16 convolutions through a
slow fallback, so ``bf16-mixed`` is much slower than float32 there (``dfn`` warns at start-up).
"""
from __future__ import annotations

import json
import sys

import torch

from dfn.ops import dynamic_local_filter
from dfn.ops.profiling import machine, median_seconds, native_bf16


def conv_step(conv: torch.nn.Conv2d, x: torch.Tensor, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = conv(x)
    y.float().sum().backward()


def filter_step(x: torch.Tensor, logits: torch.Tensor, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = dynamic_local_filter(x, logits.to(torch.bfloat16) if bf16 else logits, 9, softmax=True)
    y.float().sum().backward()


def main() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(16, 64, 64, 64, requires_grad=True)
    frames = torch.rand(16, 1, 64, 64, requires_grad=True)
    logits = torch.randn(16, 81, 64, 64, requires_grad=True)
    cases = {"conv3x3_64to64_B16_64x64": lambda bf16: conv_step(conv, x, bf16),
             "local_filter_9x9_softmax_B16_64x64": lambda bf16: filter_step(frames, logits, bf16)}
    results = {}
    for name, run in cases.items():
        seconds = {precision: median_seconds(lambda: run(precision == "bf16"), repeats=3, warmup=1)
                   for precision in ("32", "bf16")}
        results[name] = {"float32_ms": 1e3 * seconds["32"], "bf16_autocast_ms": 1e3 * seconds["bf16"],
                         "bf16_over_float32": seconds["bf16"] / seconds["32"]}
    print(json.dumps({"command": "python benchmarks/bf16_cpu.py " + " ".join(sys.argv[1:]),
                      "machine": machine(), "native_bf16": native_bf16(),
                      "what": "forward + backward, median of 3 after 1 warm-up", "cases": results},
                     indent=2))


if __name__ == "__main__":
    main()
