"""Which task a data folder belongs to.

A generator (or a preparation step) writes ``avlab-dataset.json`` at the root of what it makes:
the task's name, the benchmark, its profile. A user's own folder in a public layout (VoxCeleb,
LRW, VGGSound) has no manifest: then each registered task is asked whether it recognises the
layout, and exactly one must. So ``avlab train --method M --data D`` needs no task flag.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from avlab.registry import TASKS

MANIFEST = "avlab-dataset.json"


def write_manifest(root: str | os.PathLike, task: str, **info) -> Path:
    path = Path(root) / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"task": task, **info}, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_manifest(root: str | os.PathLike) -> dict | None:
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(info, dict) or "task" not in info:
        raise ValueError(f"{path}: expected a JSON object with a 'task' field")
    return info


def detect_task(root: str | os.PathLike) -> str:
    """The task of the data at ``root``: its manifest's, else the one task that recognises its layout."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a folder")
    info = read_manifest(root)
    if info is not None:
        TASKS.get(info["task"])  # a manifest naming an unknown task is an error, with the known ones
        return info["task"]
    matches = [name for name, task in TASKS.items() if task.recognises(root)]
    if len(matches) == 1:
        return matches[0]
    layouts = "; ".join(f"{name}: {task.layout}" for name, task in TASKS.items())
    if not matches:
        raise ValueError(f"{root}: no {MANIFEST} and no task recognises its layout ({layouts}); pass --task")
    raise ValueError(f"{root}: several tasks recognise its layout ({', '.join(matches)}); pass --task")
