"""How well a clustering matches labels (identities, attributes): purity, NMI, ARI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def purity(labels, clusters) -> float:
    """Share of points whose cluster's majority label is their own.

    >>> purity(["a", "a", "b", "b"], [0, 0, 0, 1])
    0.75
    """
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    hits = sum(np.unique(labels[clusters == c], return_counts=True)[1].max() for c in np.unique(clusters))
    return float(hits / len(labels))


def cluster_scores(labels, clusters) -> dict[str, float]:
    return {"purity": purity(labels, clusters), "nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters))}


def run_cluster_scores(run: str | Path, meta_csv: str | Path | None = None, which: str = "latest") -> dict:
    """Scores of a CMPC run's saved clustering against identities (and the voice-face agreement):
    the ``latest`` one, or the ``first`` (the one the prototype loss started from)."""
    import pandas as pd
    from safetensors.torch import load_file

    from avlab.cluster import Clustering

    run = Path(run)
    if which not in ("latest", "first"):
        raise ValueError(f"which must be 'latest' or 'first', got {which!r}")
    tensors = load_file(str(run / ("clusters.safetensors" if which == "latest" else "clusters_first.safetensors")))
    paths = json.loads((run / "train_clips.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    meta = pd.read_csv(meta_csv or Path(cfg["data"]) / "meta.csv").set_index("path")
    identity = meta.loc[paths, "identity"].to_numpy()
    out = {}
    for modality in ("voice", "face"):
        c = Clustering.from_tensors(tensors, modality)
        out[modality] = [{"k": len(cent), **cluster_scores(identity, a.numpy())} for cent, a in zip(c.centroids, c.assign)]
    v, f = Clustering.from_tensors(tensors, "voice"), Clustering.from_tensors(tensors, "face")
    out["voice_vs_face_nmi"] = [float(normalized_mutual_info_score(a.numpy(), b.numpy())) for a, b in zip(v.assign, f.assign)]
    return out
