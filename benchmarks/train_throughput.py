"""Training throughput of the Moving MNIST models on this machine: JSON to stdout.

Each model (the recurrent DFN and the ConvLSTM baseline, built from their configs) runs in its own
subprocess, so that peak memory is its own: ``warmup`` training steps (forward, backward, Adam),
then ``steps`` timed ones at the same batch size; iterations/s, seconds/iteration and peak RSS.
``--profile`` adds where the time of one DFN step goes (torch.profiler, top operators);
``--compile [MODE]`` adds each model again with ``--model.init_args.compile MODE`` (torch.compile of the
predictor; the compilation happens in the warm-up steps, which are timed separately).
``--backend B`` runs the DFN's dynamic filtering on backend ``B`` (:mod:`dfn.ops.backends`);
``--channels_last false`` keeps the networks' weights NCHW (``model.channels_last``, default true);
``--models dfn`` leaves the baselines out; ``conv_lstm_s`` is a ConvLSTM of the size of OpenSTL's
ConvLSTM-S for Moving MNIST (dfn's own implementation, ``dfn.predictors.ConvLSTMPredictor``, with
four layers of 128), for a peer comparison at the same batch, threads and precision:
``dfn_speedup`` in the JSON is each model's step time over the DFN's. ``--rounds N`` runs the list
of models N times, alternating, so that a shared machine's drift falls on every model alike:
``dfn_speedup`` then compares the medians over the rounds, ``dfn_speedup_per_round`` each round.
``--convolutions`` records every convolution and matrix product of one more step (forward and
backward, :class:`dfn.ops.profiling.ConvolutionLog`) and times each alone on fresh tensors:
``convolution_seconds_alone`` is a floor under the step for as long as they run on this library
(oneDNN on the CPU), and ``dfn_speedup_ceiling`` each other model's step over the DFN's floor:
the most that any work outside them could bring. ``activation_seconds_alone`` times the
LeakyReLU passes of the same step alike (forward and backward; PyTorch's public API runs each as
its own pass over memory; 0 for the ConvLSTMs, whose gates are not LeakyReLUs), and
``dfn_speedup_ceiling_with_activations`` is each other model's step over the DFN's convolutions
and activations together.

    python benchmarks/train_throughput.py --steps 5 --profile > results/train_throughput_cpu.json
    python benchmarks/train_throughput.py --steps 3 --compile > results/train_compile_cpu.json
    python benchmarks/train_throughput.py --models dfn,conv_lstm_s --steps 2 --rounds 3 [--precision bf16]
    python benchmarks/train_throughput.py --models dfn,conv_lstm_s --warmup 2 --steps 3 --convolutions
    python benchmarks/train_throughput.py --device cuda --warmup 5 --steps 50 --profile   # on a GPU

On a GPU, ``--precision bf16`` runs the steps under ``torch.autocast`` (as ``bf16-mixed``), peak
memory is the CUDA allocator's peak, and the profile is by GPU kernel time.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from dfn.ops.profiling import ACTIVATIONS, ConvolutionLog, machine, synchronize

CONV_LSTM = ["--config", "configs/moving_mnist.yaml", "--config", "configs/baselines/conv_lstm.yaml"]
MODELS = {"dfn": ["--config", "configs/moving_mnist.yaml"],
          "conv_lstm": CONV_LSTM,
          # the size of OpenSTL's ConvLSTM-S for Moving MNIST: four layers of 128, 5x5 gates, 4x4 patches
          "conv_lstm_s": CONV_LSTM + ["--model.init_args.predictor.init_args.hidden", "[128, 128, 128, 128]"]}


def build(config_args: list[str], batch_size: int, compile: str, device: torch.device,
          channels_last: str = "true"):
    from dfn.harness.cli import DfnCLI
    cli = DfnCLI(args=[*config_args, "--data.init_args.batch_size", str(batch_size),
                       "--trainer.logger", "false", "--model.init_args.compile", compile,
                       "--model.init_args.channels_last", channels_last],
                 run=False)
    model, data = cli.model, cli.datamodule
    model.to(device).setup("fit")                        # compiles when asked
    batch = next(iter(data.train_dataloader()))         # the first batch of the seeded stream
    return model, {key: value.to(device) for key, value in batch.items()}


def step(model, optimizer, batch, autocast: torch.autocast) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        loss = model.training_step(batch, 0)
    loss.backward()
    optimizer.step()


def measure(name: str, batch_size: int, warmup: int, steps: int, profile: bool, compile: str,
            device: torch.device, precision: str, backend: str, channels_last: str,
            convolutions: bool = False) -> dict:
    config = MODELS[name] + (["--model.init_args.predictor.init_args.backend", backend]
                             if name == "dfn" else [])
    model, batch = build(config, batch_size, compile, device, channels_last)
    model.log = lambda *a, **k: None                    # no trainer attached
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    start = time.perf_counter()
    for _ in range(warmup):
        step(model, optimizer, batch, autocast)
    synchronize(device)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step(model, optimizer, batch, autocast)
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    result = {"model": name, "backend": backend if name == "dfn" else None, "compiled": {"false": False, "true": True}.get(compile, compile),
              "precision": precision, "channels_last": channels_last == "true", "warmup_steps": warmup,
              "warmup_seconds": warmup_seconds, "parameters": sum(p.numel() for p in model.parameters()),
              "batch_size": batch_size, "timed_steps": steps, "seconds_per_iteration": seconds,
              "iterations_per_second": 1 / seconds,
              "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        result["peak_gpu_memory_MB"] = torch.cuda.max_memory_allocated(device) / 2**20
    if convolutions:
        with ConvolutionLog() as log:
            step(model, optimizer, batch, autocast)
        result.update(convolution_calls=log.count(), activation_calls=log.count(ACTIVATIONS),
                      convolution_multiply_adds_forward=log.multiply_adds(),
                      convolution_seconds_alone=log.seconds_alone(),
                      activation_seconds_alone=log.seconds_alone(ACTIVATIONS))
    if profile:
        result["profile_one_step"] = profile_step(model, optimizer, batch, autocast, device)
    return result


def profile_step(model, optimizer, batch, autocast: torch.autocast, device: torch.device) -> dict:
    """Where one training step's time goes: the top operators by self time (CPU time, or on a GPU
    the time of the kernels each operator launched), the total, and the number of ATen operator
    calls (on a GPU each call costs launch overhead, whatever its size)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile as torch_profile
    gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with torch_profile(activities=activities) as prof:
        step(model, optimizer, batch, autocast)
        synchronize(device)
    attr = "self_device_time_total" if gpu else "self_cpu_time_total"
    events = prof.key_averages()
    # on a GPU each kernel is listed twice: as its own row and inside the operator that launched
    # it; the total counts the kernel rows, the ranking the operator rows
    operators = [e for e in events if e.device_type == DeviceType.CPU]
    counted = [e for e in events if e.device_type != DeviceType.CPU] if gpu else operators
    total = sum(getattr(e, attr) for e in counted)
    top = sorted(operators, key=lambda e: getattr(e, attr), reverse=True)[:12]
    unit = "self_gpu_ms" if gpu else "self_cpu_ms"
    return {f"{unit}_total": total / 1e3,
            "aten_calls": sum(e.count for e in operators if e.key.startswith("aten::")),
            "top_ops": [{"op": e.key, unit: getattr(e, attr) / 1e3, "share": getattr(e, attr) / total,
                         "calls": e.count} for e in top]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile one DFN training step")
    parser.add_argument("--compile", nargs="?", const="true", metavar="MODE",
                        help="also measure with torch.compile (a mode such as reduce-overhead, or none)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32",
                        help="32 (float32; TF32 convolutions on NVIDIA GPUs) or bf16 autocast")
    parser.add_argument("--backend", default="auto", help="the DFN's dynamic filtering backend")
    parser.add_argument("--channels_last", choices=["true", "false"], default="true",
                        help="the networks' conv weights (and activations) channels-last")
    parser.add_argument("--convolutions", action="store_true",
                        help="time each model's convolutions and matrix products alone: a floor under its step")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of " + ", ".join(MODELS))
    parser.add_argument("--rounds", type=int, default=1, help="run the models this many times, alternating")
    parser.add_argument("--only", choices=list(MODELS), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--compiled", default="false", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args.batch_size, args.warmup, args.steps,
                                 args.profile and args.only == "dfn" and args.compiled == "false", args.compiled,
                                 torch.device(args.device), args.precision, args.backend,
                                 args.channels_last, args.convolutions)))
        return
    results = []
    for round_ in range(args.rounds):
        for compiled in (["false", args.compile] if args.compile else ["false"]):
            for name in args.models.split(","):
                cmd = [sys.executable, __file__, "--only", name, "--batch_size", str(args.batch_size),
                       "--warmup", str(args.warmup), "--steps", str(args.steps),
                       "--device", args.device, "--precision", args.precision, "--backend", args.backend,
                       "--channels_last", args.channels_last]
                cmd += (["--profile"] if args.profile else []) + ["--compiled", compiled]
                cmd += ["--convolutions"] if args.convolutions else []
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                results.append({**json.loads(out.strip().splitlines()[-1]), "round": round_})
    report = {"command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
              "machine": {**machine(),
                          "device": (torch.cuda.get_device_name(args.device)
                                     if args.device.startswith("cuda") else "cpu")},
              "models": results, "dfn_speedup": speedups(results)}
    if args.convolutions:
        report["dfn_speedup_ceiling"] = speedups(results, floor=("convolution_seconds_alone",))
        report["dfn_speedup_ceiling_with_activations"] = speedups(
            results, floor=("convolution_seconds_alone", "activation_seconds_alone"))
    if args.rounds > 1:
        report["dfn_speedup_per_round"] = [speedups([r for r in results if r["round"] == k])
                                           for k in range(args.rounds)]
    print(json.dumps(report, indent=2))


def speedups(results: list[dict], floor: tuple[str, ...] = ("seconds_per_iteration",)) -> dict[str, float]:
    """Each other model's median seconds per iteration (over the rounds) over the DFN's, measured
    alike (same compile mode); with ``floor`` naming other fields of the DFN's results, over
    their sum (``("convolution_seconds_alone",)``: over its convolutions alone)."""
    def key(r: dict) -> str:
        return f"{r['model']}{'' if r['compiled'] is False else '_compiled'}"

    seconds: dict[tuple[str, object], list[float]] = {}
    for r in results:
        seconds.setdefault((r["model"], r["compiled"]), []).append(
            sum(r[f] for f in floor) if r["model"] == "dfn" else r["seconds_per_iteration"])
    median = {k: statistics.median(v) for k, v in seconds.items()}
    return {key(r): median[r["model"], r["compiled"]] / median["dfn", r["compiled"]]
            for r in results if r["model"] != "dfn" and ("dfn", r["compiled"]) in median}


if __name__ == "__main__":
    main()
