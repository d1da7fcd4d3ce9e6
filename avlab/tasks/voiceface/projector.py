"""The voice-face test embeddings in TensorBoard's projector: voices and faces of each clip in one
space, each point's sprite the clip's face (``<run>/tb/projector/``)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from avlab.tblog import PROJECTOR_DIR, TB_DIR, EventLog


def _thumbnails(run: Path, data: Path, paths: list[str], size: int) -> np.ndarray:
    """The middle frame of each clip (the evaluation's cached frames), resized to ``size``²."""
    import cv2

    from avlab.runs import load_config
    from avlab.tasks.voiceface.protocol import eval_dataset

    cfg, _ = load_config(run)
    ds = eval_dataset(data, cfg.task_config(), workers=1, progress=False)
    index = {c.path: i for i, c in enumerate(ds.clips)}
    return np.stack([cv2.resize(ds.frame(index[p]), (size, size), interpolation=cv2.INTER_AREA) for p in paths])


def write_projector(run: str | Path, splits=("unseen_unheard",), thumb: int = 32, max_clips: int = 2000,
                    seed: int = 0) -> Path:
    """The test embeddings of ``<run>/embeddings.npz`` for TensorBoard's projector: voices and faces
    of each clip in one space, labelled by modality, identity, split (and gender where the data
    has it), each point's sprite the clip's face. Rewrites ``<run>/tb/projector/``."""
    import json

    import pandas as pd

    run = Path(run)
    emb = np.load(run / "embeddings.npz")
    rows = np.flatnonzero(np.isin(emb["split"], list(splits)))
    if len(rows) > max_clips:  # the sprite atlas has to fit in one image
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_clips, replace=False))
    data = Path(json.loads((run / "config.json").read_text())["data"])
    paths = [str(p) for p in emb["paths"][rows]]
    gender = {}
    if (data / "meta.csv").exists():
        meta = pd.read_csv(data / "meta.csv")
        if "gender" in meta:
            gender = dict(zip(meta.path, meta.gender.map({"f": "female", "m": "male"}).fillna(meta.gender)))
    faces = _thumbnails(run, data, paths, thumb)
    labels = [[modality, str(emb["identity"][i]), str(emb["split"][i]), gender.get(p, "-"), p]
              for modality in ("voice", "face") for i, p in zip(rows, paths)]
    out = run / TB_DIR / PROJECTOR_DIR
    shutil.rmtree(out, ignore_errors=True)  # add_embedding appends to projector_config.pbtxt
    with EventLog(run, f"{TB_DIR}/{PROJECTOR_DIR}") as log:
        log.embedding(np.concatenate([emb["voice"][rows], emb["face"][rows]]), labels,
                      np.concatenate([faces, faces]), tag="voice_face_test",
                      header=["modality", "identity", "split", "gender", "path"])
    return out
