"""Training throughput of the Moving MNIST models on this machine: JSON to stdout.

Each model (the recurrent DFN and the ConvLSTM baseline, built from their configs) runs in its own
subprocess, so that peak memory is its own: ``warmup`` training steps (forward, backward, Adam),
then ``steps`` timed ones at the same batch size; iterations/s, seconds/iteration and peak RSS.
``--profile`` adds where the time of one DFN step goes (torch.profiler, top operators);
``--compile`` adds each model again with ``--model.init_args.compile true`` (torch.compile of the
predictor; the compilation happens in the warm-up steps, which are timed separately).

    python benchmarks/train_throughput.py --steps 5 --profile > results/train_throughput_cpu.json
    python benchmarks/train_throughput.py --steps 3 --compile > results/train_compile_cpu.json
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch

MODELS = {"dfn": ["--config", "configs/moving_mnist.yaml"],
          "conv_lstm": ["--config", "configs/moving_mnist.yaml", "--config", "configs/baselines/conv_lstm.yaml"]}


def build(config_args: list[str], batch_size: int, compile: bool):
    from dfn.cli import DfnCLI
    cli = DfnCLI(args=[*config_args, "--data.init_args.batch_size", str(batch_size),
                       "--trainer.logger", "false", "--model.init_args.compile", str(compile).lower()],
                 run=False)
    model, data = cli.model, cli.datamodule
    model.setup("fit")                                   # compiles when asked
    batch = data._train_batch(torch.Generator().manual_seed(0))
    return model, batch


def step(model, optimizer, batch) -> None:
    optimizer.zero_grad(set_to_none=True)
    model.training_step(batch, 0).backward()
    optimizer.step()


def measure(name: str, batch_size: int, warmup: int, steps: int, profile: bool, compile: bool) -> dict:
    model, batch = build(MODELS[name], batch_size, compile)
    model.log = lambda *a, **k: None                    # no trainer attached
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(warmup):
        step(model, optimizer, batch)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step(model, optimizer, batch)
    seconds = (time.perf_counter() - start) / steps
    result = {"model": name, "compiled": compile, "warmup_steps": warmup,
              "warmup_seconds": warmup_seconds, "parameters": sum(p.numel() for p in model.parameters()),
              "batch_size": batch_size, "timed_steps": steps, "seconds_per_iteration": seconds,
              "iterations_per_second": 1 / seconds,
              "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            step(model, optimizer, batch)
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
        result["profile_one_step"] = {
            "self_cpu_ms_total": total / 1e3,
            "top_ops": [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3,
                         "share": e.self_cpu_time_total / total, "calls": e.count} for e in top]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile one DFN training step")
    parser.add_argument("--compile", action="store_true", help="also measure with torch.compile")
    parser.add_argument("--only", choices=list(MODELS), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args.batch_size, args.warmup, args.steps,
                                 args.profile and args.only == "dfn" and not args.compiled, args.compiled)))
        return
    results = []
    for compiled in ([False, True] if args.compile else [False]):
        for name in MODELS:
            cmd = [sys.executable, __file__, "--only", name, "--batch_size", str(args.batch_size),
                   "--warmup", str(args.warmup), "--steps", str(args.steps)]
            cmd += (["--profile"] if args.profile else []) + (["--compiled"] if compiled else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps({"machine": {"platform": platform.platform(), "torch": torch.__version__,
                                  "threads": torch.get_num_threads(), "device": "cpu"},
                      "models": results}, indent=2))


if __name__ == "__main__":
    main()
