"""Learning curves from Lightning's CSV logs: one PNG chart and the series as JSON.

::

    python -m dfn.pictures.curves runs/a/csv/version_0/metrics.csv runs/b/csv/version_0/metrics.csv \\
        --labels DFN ConvLSTM --metric train/loss --metric val/bce --out results/curves.png

Each ``--metric`` is one panel (x: training step); each CSV one line in every panel. Missing
values (a metric logged at other steps) are skipped. ``--json`` also writes the plotted points.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from dfn.pictures.viz import save_png

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def read_series(path: str | Path, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``metric`` in a Lightning ``metrics.csv``, in step order."""
    with open(path, newline="") as f:
        rows = [(int(r["step"]), float(r[metric])) for r in csv.DictReader(f) if r.get(metric) not in (None, "")]
    return sorted(rows)


def line_chart(series: dict[str, list[tuple[int, float]]], title: str, size: tuple[int, int] = (520, 300),
               log_y: bool = False) -> np.ndarray:
    """One panel: a line per label, axes with min/max ticks, a legend. RGB ``uint8 (H, W, 3)``."""
    width, height = size
    left, right, top, bottom = 60, 10, 24, 30
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 4), title, fill="black")
    points = [p for s in series.values() for p in s]
    if not points:
        draw.text((left, height // 2), "no data", fill="black")
        return np.asarray(image)
    transform = (lambda v: math.log10(max(v, 1e-12))) if log_y else (lambda v: v)  # noqa: E731
    xs, ys = [p[0] for p in points], [transform(p[1]) for p in points]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(ys)
    y0, y1 = (y0 - 0.5, y1 + 0.5) if y1 - y0 < 1e-9 else (y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0))
    px = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)          # noqa: E731
    py = lambda y: top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)    # noqa: E731
    draw.rectangle([left, top, width - right, height - bottom], outline=(160, 160, 160))
    undo = (lambda y: 10 ** y) if log_y else (lambda y: y)                       # noqa: E731
    for y in (y0, (y0 + y1) / 2, y1):
        draw.text((2, py(y) - 6), f"{undo(y):.4g}", fill="black")
    for x in (x0, (x0 + x1) // 2, x1):
        draw.text((px(x) - 10, height - bottom + 4), f"{int(x)}", fill="black")
    for k, (label, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        line = [(px(x), py(transform(v))) for x, v in values]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line if len(line) < 30 else []:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((width - right - 150, top + 4 + 12 * k), f"- {label}", fill=colour)
    return np.asarray(image)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dfn.pictures.curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="+", help="Lightning CSVLogger metrics.csv files")
    parser.add_argument("--labels", nargs="+", help="one per CSV (default: the file paths)")
    parser.add_argument("--metric", action="append", required=True, help="a logged key, e.g. val/bce")
    parser.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--json", help="also write the plotted series here")
    args = parser.parse_args(argv)
    labels = args.labels or args.csv
    if len(labels) != len(args.csv):
        parser.error("give one label per CSV file")
    data = {metric: {label: read_series(path, metric) for label, path in zip(labels, args.csv)}
            for metric in args.metric}
    panels = [line_chart(series, metric, log_y=args.log_y) for metric, series in data.items()]
    save_png(np.concatenate(panels, axis=0), args.out)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
