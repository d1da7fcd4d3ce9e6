"""Cluster inspection (notebook 02): what CMPC's prototypes group, and which clips it distrusts."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from avlab.cluster import Clustering
from avlab.eval.clusters import cluster_scores
from avlab.viz import media


@dataclass
class RunClusters:
    run: Path
    data: Path
    voice: Clustering
    face: Clustering
    clips: pd.DataFrame  # the training clips in bank order, with meta columns
    epoch: int


def load_run_clusters(run: str | Path) -> RunClusters:
    from safetensors import safe_open
    from safetensors.torch import load_file

    run = Path(run)
    path = run / "clusters.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: only CMPC runs that reached a clustering save one")
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        epoch = int((f.metadata() or {}).get("epoch", -1))
    cfg = json.loads((run / "config.json").read_text())
    data = Path(cfg["data"])
    paths = json.loads((run / "train_clips.json").read_text())
    meta = pd.read_csv(data / "meta.csv").set_index("path") if (data / "meta.csv").exists() else pd.DataFrame(index=paths)
    clips = meta.reindex(paths).reset_index().rename(columns={"index": "path"})
    if "identity" not in clips:
        clips["identity"] = [Path(p).parts[-3] for p in paths]
    return RunClusters(run, data, Clustering.from_tensors(tensors, "voice"), Clustering.from_tensors(tensors, "face"),
                       clips, epoch)


def cluster_table(rc: RunClusters, granularity: int = 0) -> pd.DataFrame:
    """One row per (modality, cluster): size and concentration φ."""
    rows = []
    for modality, c in (("voice", rc.voice), ("face", rc.face)):
        sizes = np.bincount(c.assign[granularity].numpy(), minlength=len(c.centroids[granularity]))
        for k, (n, phi) in enumerate(zip(sizes, c.phi[granularity].numpy())):
            rows.append({"modality": modality, "cluster": k, "size": int(n), "phi": float(phi)})
    return pd.DataFrame(rows)


def attribute_labels(clips: pd.DataFrame) -> dict[str, np.ndarray]:
    """Identity and each attribute (continuous ones in quartile bins) as label arrays."""
    labels = {"identity": clips.identity.to_numpy()}
    if "gender" in clips:
        labels["gender"] = clips.gender.astype(str).to_numpy()
    for name in ("age", "size"):
        if name in clips and clips[name].notna().all():
            labels[f"{name} (quartile)"] = pd.qcut(clips[name], 4, labels=False, duplicates="drop").to_numpy()
    return labels


def cluster_metrics(rc: RunClusters) -> pd.DataFrame:
    """Purity, NMI and ARI of every granularity of both modalities against identity and attributes."""
    rows = []
    for modality, c in (("voice", rc.voice), ("face", rc.face)):
        for g, assign in enumerate(c.assign):
            for name, labels in attribute_labels(rc.clips).items():
                rows.append({"modality": modality, "granularity": g, "k": len(c.centroids[g]), "against": name,
                             **cluster_scores(labels, assign.numpy())})
    return pd.DataFrame(rows)


def agreement(rc: RunClusters, granularity: int = 0) -> dict:
    """How much the voice and face clusterings agree (NMI, ARI) and their contingency table."""
    v, f = rc.voice.assign[granularity].numpy(), rc.face.assign[granularity].numpy()
    return {**{k: v_ for k, v_ in cluster_scores(v, f).items() if k != "purity"},
            "contingency": pd.crosstab(pd.Series(v, name="voice cluster"), pd.Series(f, name="face cluster"))}


def sizes_figure(rc: RunClusters, granularity: int = 0):
    import matplotlib.pyplot as plt

    table = cluster_table(rc, granularity)
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    for modality, colour in (("voice", "C0"), ("face", "C1")):
        t = table[table.modality == modality]
        axes[0].hist(t["size"], bins=20, alpha=0.6, label=modality, color=colour)
        axes[1].scatter(t["size"], t["phi"], s=10, label=modality, color=colour)
    axes[0].set(xlabel="cluster size", ylabel="clusters", title=f"granularity {granularity}")
    axes[1].set(xlabel="cluster size", ylabel="concentration φ")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def members(rc: RunClusters, modality: str, granularity: int, cluster: int) -> pd.DataFrame:
    c = rc.voice if modality == "voice" else rc.face
    idx = np.flatnonzero(c.assign[granularity].numpy() == cluster)
    return rc.clips.iloc[idx].assign(bank_index=idx)


def downweighted(rc: RunClusters, n: int = 8, delta: float = -1.0, kappa: float = 0.1) -> pd.DataFrame:
    """The training clips with the lowest recalibration weight over the whole memory bank.

    ρ and w as in training (DESIGN §2.1), computed on the final banks and the saved clusterings,
    with the whole training set as the "batch".
    """
    from safetensors.torch import load_file

    from avlab.losses.recalibration import prototype_agreement, recalibration_weights

    weights = load_file(str(rc.run / "model.safetensors"))
    vb, fb = weights["voice_bank"], weights["face_bank"]
    vc, fc = rc.voice, rc.face
    agree = prototype_agreement([vc.centroids[g][vc.assign[g]] for g in range(len(vc.centroids))],
                                [fc.centroids[g][fc.assign[g]] for g in range(len(fc.centroids))])
    w = recalibration_weights(vb, fb, agree, delta, kappa)
    rho = torch.nn.functional.cosine_similarity(vb, fb) - agree
    out = rc.clips.assign(rho=rho.numpy(), weight=w.numpy(), bank_index=np.arange(len(rc.clips)))
    return out.sort_values("weight").head(n)


# --- media for galleries ------------------------------------------------------------------------
def thumbnail_png(root: str | Path, rel_path: str, size: int = 96) -> bytes:
    """The clip's middle frame as PNG bytes (see :mod:`avlab.viz.media`)."""
    return media.thumbnail_png(root, rel_path, size)


def gallery_html(root: str | Path, rows: pd.DataFrame, extra: tuple[str, ...] = ()) -> str:
    """Face thumbnails with audio players and labels, side by side (self-contained HTML)."""
    return media.gallery(media.clip_cards(root, rows, extra))


def cluster_summary(rc: RunClusters, modality: str, granularity: int, cluster: int) -> tuple[pd.DataFrame, str]:
    """A cluster's members and a one-line summary: size, identities, purity and its majority."""
    import html as html_lib

    m = members(rc, modality, granularity, cluster)
    share = m.identity.value_counts(normalize=True)
    return m, (f"{modality} cluster {cluster}: {len(m)} members, {m.identity.nunique()} identities; "
               f"purity {share.iloc[0]:.2f} ({html_lib.escape(str(share.index[0]))})")


def cluster_galleries(rc: RunClusters, modality: str = "face", granularity: int = 0, n_clusters: int = 3,
                      max_members: int = 8) -> str:
    """The ``n_clusters`` largest clusters as static galleries (faces + voices), the part of the
    browser that survives in a notebook's HTML export (widgets need a live kernel)."""
    table = cluster_table(rc, granularity)
    table = table[(table.modality == modality) & (table["size"] > 0)].sort_values("size", ascending=False)
    parts = []
    for k in table.cluster.head(n_clusters):
        m, summary = cluster_summary(rc, modality, granularity, int(k))
        parts.append(f"<p>{summary}</p>" + gallery_html(rc.data, m.head(max_members)))
    return "".join(parts)


def cluster_browser(rc: RunClusters, modality: str = "face", granularity: int = 0, max_members: int = 12):
    """A dropdown of clusters (largest first) and the chosen cluster's gallery and purity.

    The gallery is an ``ipywidgets.HTML`` whose value is replaced, not an ``Output`` widget: an
    Output widget's captured display can stall papermill's client, and HTML behaves the same in
    JupyterLab and in batch.
    """
    import ipywidgets as w

    table = cluster_table(rc, granularity)
    table = table[(table.modality == modality) & (table["size"] > 0)].sort_values("size", ascending=False)
    pick = w.Dropdown(options=[(f"cluster {r.cluster} ({r.size} clips)", int(r.cluster)) for r in table.itertuples()],
                      description=f"{modality} cluster")
    gallery = w.HTML()

    def show(change=None):
        m, summary = cluster_summary(rc, modality, granularity, pick.value)
        gallery.value = f"<p>{summary}</p>" + gallery_html(rc.data, m.head(max_members))

    pick.observe(show, names="value")
    show()
    return w.VBox([pick, gallery])
