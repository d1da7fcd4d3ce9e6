"""The bad-media corpus through every stage, as the table issue 16 asks for; prints markdown (and JSON).

    python benchmarks/bad_media.py [--out DIR] [--json FILE]

Builds the corpus of tests/bad_media.py (good clips plus every broken or unusual case, in the
VoxCeleb2 layout; nothing committed) and reports, for each case, what happened and how long it took:

* scan   — ``avlab scan``'s verdict on the file (the whole folder is also scanned once through the
  worker pool, to show it ends), timed on that one file;
* loader — the dataset: left out at indexing (header probe), left out when decoded into the cache,
  or kept (with the problems worked around);
* train  — ``avlab train --method cid`` for one epoch on the whole folder: trained on, or listed in
  the run's ``bad_clips.json``;
* demo   — ``avlab demo`` on that run, the case uploaded through gradio_client as a voice (faces to
  rank: two good clips) and as a face (voice to rank: a good clip).

Every stage runs under a time limit: a hang would show as "TIMEOUT", a crash as "CRASH".
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import bad_media  # noqa: E402  (tests/bad_media.py: the corpus)


def timed(fn, *args):
    """(what happened, seconds): fn's text, or the error's type and text."""
    t0 = time.perf_counter()
    try:
        text = fn(*args)
    except Exception as exc:  # the table records it; nothing may stop the other cases
        text = f"CRASH {type(exc).__name__}: {exc}"
    return text, round(time.perf_counter() - t0, 3)


def _verdict(r: dict | None) -> str:
    if r is None:
        return "OK"
    if "error" in r:
        return f"BAD {r['error']}: {r['reason']}"
    return "OK, noted: " + "; ".join(r["notes"])


def scan_stage(root: Path) -> tuple[dict, dict]:
    from avlab.data.voxceleb import _check_one, scan

    t0 = time.perf_counter()
    report = scan(root, workers=2, progress=False)
    total = {"scan_seconds": round(time.perf_counter() - t0, 2), "n_files": report["n_files"],
             "n_bad": len(report["bad"]), "n_noted": len(report["warned"])}
    cells = {c.name: timed(lambda c=c: _verdict(_check_one((str(root), bad_media.clip_rel(c), False))))
             for c in bad_media.CASES if not c.upload_only}
    return cells, total


def loader_stage(root: Path) -> dict:
    from avlab.data.voxceleb import Clip, _extract_one, _probe_one

    def one(rel):
        probed = _probe_one((str(root), rel, False))
        if "error" in probed:
            return f"left out at indexing: {probed['error']}: {probed['reason']}"
        clip = Clip(rel, *Path(rel).parts[-3:-1], Path(rel).stem, "train", probed["n_frames"], probed["fps"])
        r = _extract_one((str(root), clip, 4, 64, True))
        if "error" in r:
            return f"left out when decoded: {r['error']}: {r['reason']}"
        return "kept" + (f", noted: {'; '.join(r['notes'])}" if r["notes"] else "")

    return {c.name: timed(one, bad_media.clip_rel(c)) for c in bad_media.CASES if not c.upload_only}


def train_stage(root: Path, run: Path, env: dict) -> tuple[dict, dict]:
    from avlab.data.voxceleb import VoiceFaceDataset

    cmd = [sys.executable, "-m", "avlab.cli", "train", "--method", "cid", "--data", str(root), "--out", str(run),
           "--epochs", "1", "--batch-size", "4", "--workers", "2", "--quiet", "--crop-seconds", "1.0"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
        output = proc.stderr.strip().splitlines()
    except subprocess.TimeoutExpired:
        status, output = "TIMEOUT", []
    total = {"train_seconds": round(time.perf_counter() - t0, 1), "train": status,
             "train_warnings": [line for line in output if "Warning" in line]}
    if status != "ok":
        return {}, total
    # What the training loop is to call (avlab/train.py is not this benchmark's): the same dataset,
    # from the same cache, saves its bad-clip list into the run folder.
    ds = VoiceFaceDataset(root, ("train",), crop_seconds=1.0, progress=False, workers=2)
    listed = {b["path"]: b for b in json.loads(ds.write_bad_clips(run).read_text())["bad"]}
    trained = set(json.loads((run / "train_clips.json").read_text()))
    total["bad_clips.json"] = {k: v for k, v in json.loads((run / "bad_clips.json").read_text()).items()
                               if k not in ("bad", "warned")}
    cells = {}
    for c in bad_media.CASES:
        rel = bad_media.clip_rel(c)
        if not c.upload_only:
            cells[c.name] = ("trained on" if rel in trained else
                             f"listed in bad_clips.json: {listed[rel]['reason']}" if rel in listed else "MISSING", None)
    return cells, total


def demo_stage(run: Path, uploads: dict[str, Path], good: list[Path], env: dict, log: Path) -> tuple[dict, dict]:
    from gradio_client import Client, handle_file

    from avlab.demo.process import demo_process

    def ask(client, api, args):
        try:
            out = client.predict(*args, api_name=api)
        except Exception as exc:
            kind = "refused" if type(exc).__name__ == "AppError" else f"CRASH {type(exc).__name__}"
            return f"{kind}: {str(exc).splitlines()[0][:160]}"
        mine = [line.lstrip("- *") for line in out[-1].splitlines() if f"'{Path(args[1]['path']).name}'" in line]
        return f"ranked {len(out[2 if api == '/voice_to_face' else 1]['data'])}" + "".join(f"; {m}" for m in mine)

    cells = {}
    with demo_process(run, log, ["--workers", "1"], env=env) as (url, _, _):
        client = Client(url, verbose=False)
        for c in bad_media.CASES:
            path = uploads[c.name]
            if not path.is_file():
                cells[c.name] = ("n/a: not a file, cannot be uploaded", None), ("n/a", None)
                continue
            faces = [handle_file(str(g)) for g in good]
            voice = timed(ask, client, "/voice_to_face", (None, handle_file(str(path)), faces))
            face = timed(ask, client, "/face_to_voice", (None, handle_file(str(path)), [handle_file(str(good[0]))]))
            cells[c.name] = voice, face
    text = log.read_text()
    return cells, {"server_log_tracebacks": text.count("Traceback"), "server_log_lines": len(text.splitlines())}


def cell(entry) -> str:
    text, seconds = entry
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if seconds is None else f"{text} ({seconds:.2f} s)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="work folder (default: a temporary one)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="avlab-bad-media-"))
    env = {**os.environ, "AVLAB_CACHE": str(work / "cache"), "GRADIO_TEMP_DIR": str(work / "gradio")}
    os.environ.update(env)
    root = work / "corpus"
    t0 = time.perf_counter()
    uploads = bad_media.make_corpus(root)
    totals = {"corpus_seconds": round(time.perf_counter() - t0, 1)}
    scan_cells, t = scan_stage(root)
    totals.update(t)
    loader_cells = loader_stage(root)
    train_cells, t = train_stage(root, work / "run", env)
    totals.update(t)
    good = sorted(root.glob("dev/mp4/id_base0/*/*.mp4"))[:2]
    demo_cells, t = demo_stage(work / "run", uploads, good, env, work / "server.log") if train_cells else ({}, {})
    totals.update(t)

    rows = []
    for c in bad_media.CASES:
        na = ("n/a (not a clip)", None)
        voice, face = demo_cells.get(c.name, (("not run", None), ("not run", None)))
        rows.append({"case": c.name, "what": c.what, "scan": scan_cells.get(c.name, na),
                     "loader": loader_cells.get(c.name, na), "train": train_cells.get(c.name, na),
                     "demo voice": voice, "demo face": face})
    cols = ["scan", "loader", "train", "demo voice", "demo face"]
    print("| case | what | " + " | ".join(cols) + " |")
    print("|" + " --- |" * (len(cols) + 2))
    for r in rows:
        print(f"| {r['case']} | {r['what']} | " + " | ".join(cell(r[k]) for k in cols) + " |")
    print()
    print(json.dumps(totals, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "totals": totals}, indent=1))
    crashed = [r["case"] for r in rows for k in cols if "CRASH" in r[k][0] or "TIMEOUT" in r[k][0]]
    return 1 if crashed or totals.get("server_log_tracebacks") else 0


if __name__ == "__main__":
    sys.exit(main())
