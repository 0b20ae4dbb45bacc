"""The closing line of every command: what it wrote, and where."""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

Snapshot = dict[str, int]


def snapshot(run_dir: Path) -> Snapshot:
    """``{relative path: modification time}`` of every file under ``run_dir``."""
    files: Snapshot = {}
    for folder, _, names in os.walk(run_dir):
        for name in names:
            path = os.path.join(folder, name)
            try:
                files[os.path.relpath(path, run_dir)] = os.stat(path).st_mtime_ns
            except OSError:
                continue
    return files


def written(run_dir: Path, before: Snapshot) -> str:
    """``"<run_dir>: checkpoints/ (last.ckpt, step0000500.ckpt), figures/ (8 files), config.yaml"``:
    the files new or changed since ``before``, by top-level folder; ``""`` if none."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path, mtime in sorted(snapshot(run_dir).items()):
        if before.get(path) != mtime and not Path(path).name.startswith("."):
            top, _, rest = path.partition(os.sep)
            groups[top + os.sep if rest else top].append(rest)
    if not groups:
        return ""
    parts = []
    for top, names in groups.items():
        if not top.endswith(os.sep):
            parts.append(top)
        elif len(names) <= 3:
            parts.append(f"{top} ({', '.join(names)})")
        else:
            parts.append(f"{top} ({len(names)} files)")
    return f"{run_dir}: {', '.join(parts)}"
