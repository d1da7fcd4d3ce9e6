"""Figures and tables for the data tour notebook (00): thin notebook, testable functions.

The tour covers either synthetic set: talking-faces (VoxCeleb-like, the functions here) and
lip-words (LRW-like: the helpers shared with notebook 07 live in :mod:`avlab.viz.lipreading`).
What both have — speakers, clips with sound, the mouth against the audio — is shown by the same
functions; :func:`benchmark_of` tells the notebook which set it was given.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

from avlab.data import media
from avlab.data.synth.talking_faces import FPS, SAMPLES_PER_FRAME
from avlab.viz import media as inline

GENDER_LABELS = {"f": "female", "m": "male"}


def gender_label(value) -> str:
    """"female" / "male" for the generator's f / m codes (other values as they are)."""
    return GENDER_LABELS.get(str(value), str(value))


def benchmark_of(root: str | Path) -> str:
    """"lip-words" or "talking-faces": the synthetic set at ``root``, as its manifest names it (a set
    without one is taken for talking-faces, the tour's first kind)."""
    from avlab.data.manifest import read_manifest

    return (read_manifest(root) or {}).get("benchmark", "talking-faces")


def load_meta(root: str | Path) -> pd.DataFrame:
    """The set's ``meta.csv``; a lip-words clip's speaker is also its ``identity``, so the speaker and
    clip galleries serve both sets."""
    path = Path(root) / "meta.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {root} a synthetic set (avlab synth talking-faces|lip-words)?")
    meta = pd.read_csv(path)
    return meta.assign(identity=meta.speaker) if "identity" not in meta and "speaker" in meta else meta


def summary(meta: pd.DataFrame) -> str:
    """One line on the set's size."""
    if "word" in meta:
        splits = meta.split.value_counts().reindex(["train", "val", "test"], fill_value=0)
        return (f"{meta.word.nunique()} words, {meta.speaker.nunique()} speakers, {len(meta)} clips "
                f"({', '.join(f'{n} {s}' for s, n in splits.items())})")
    return f"{meta.identity.nunique()} identities, {len(meta)} clips, {meta.duration.sum() / 60:.1f} min of speech"


def mouth_opening(root: str | Path, rel_path: str) -> np.ndarray:
    """The clip's mouth opening per video frame: talking-faces stores that track itself, lip-words
    a shape track whose ``open`` column it is."""
    tracks = np.load(Path(root) / "latents" / "mouth.npz")
    track = tracks[rel_path]
    return track[:, list(tracks["shape_dims"]).index("open")] if track.ndim == 2 else track


def frame_envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS energy of the audio in each video frame's 40 ms."""
    a = np.pad(audio[: n_frames * SAMPLES_PER_FRAME], (0, max(0, n_frames * SAMPLES_PER_FRAME - len(audio))))
    return np.sqrt((a.reshape(n_frames, SAMPLES_PER_FRAME) ** 2).mean(axis=1))


def lipsync_correlation(root: str | Path, rel_path: str) -> float:
    """Pearson r between the clip's mouth opening and the decoded audio's per-frame envelope."""
    mouth = mouth_opening(root, rel_path)
    env = frame_envelope(media.read_audio(Path(root) / rel_path), len(mouth))
    return float(np.corrcoef(mouth, env)[0, 1])


def identity_grid(root: str | Path, meta: pd.DataFrame, n_identities: int = 6, frames_per_identity: int = 4):
    """Middle frames of several clips per identity: rows are identities."""
    import matplotlib.pyplot as plt

    ids = sorted(meta.identity.unique())[:n_identities]
    fig, axes = plt.subplots(len(ids), frames_per_identity, figsize=(1.6 * frames_per_identity, 1.6 * len(ids)),
                             squeeze=False)
    for r, ident in enumerate(ids):
        clips = meta[meta.identity == ident].head(frames_per_identity)
        for c in range(frames_per_identity):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(clips):
                row = clips.iloc[c]
                ax.imshow(media.read_frames(Path(root) / row.path, [int(row.n_frames) // 2])[0])
                if c == 0:
                    ax.set_title(f"{ident} ({gender_label(row.gender)}, age {row.age:.2f})", fontsize=7,
                                 loc="left")
    fig.tight_layout()
    return fig


def spectrogram_figure(root: str | Path, rel_path: str):
    import matplotlib.pyplot as plt
    import torch

    from avlab.data.features import log_mel

    audio = media.read_audio(Path(root) / rel_path)
    spec = log_mel(torch.from_numpy(audio)).numpy()
    fig, ax = plt.subplots(figsize=(8, 2.5))
    ax.imshow(spec, origin="lower", aspect="auto", extent=[0, len(audio) / 16000, 0, spec.shape[0]], cmap="magma")
    ax.set(xlabel="time (s)", ylabel="mel band", title=f"log-mel: {rel_path}")
    fig.tight_layout()
    return fig


def lipsync_figure(root: str | Path, rel_path: str):
    """Mouth opening (from the phoneme timings) against the audio envelope over time."""
    import matplotlib.pyplot as plt

    mouth = mouth_opening(root, rel_path)
    env = frame_envelope(media.read_audio(Path(root) / rel_path), len(mouth))
    t = np.arange(len(mouth)) / FPS
    fig, ax = plt.subplots(figsize=(8, 2.5))
    ax.plot(t, mouth / (mouth.max() + 1e-9), label="mouth opening")
    ax.plot(t, env / (env.max() + 1e-9), label="audio envelope", alpha=0.8)
    r = np.corrcoef(mouth, env)[0, 1]
    ax.set(xlabel="time (s)", ylabel="normalised", title=f"lip-sync (r = {r:.2f})")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def attribute_figure(meta: pd.DataFrame):
    import matplotlib.pyplot as plt

    ids = meta.drop_duplicates("identity")
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.4))
    ids.gender.map(gender_label).value_counts().sort_index().plot.bar(ax=axes[0], title="identities per gender",
                                                                       rot=0)
    axes[1].hist(ids.age, bins=15)
    axes[1].set(title="age (per identity)", xlabel="age latent")
    axes[2].hist(ids["size"], bins=15)
    axes[2].set(title="size (per identity)", xlabel="size latent")
    meta.clip_split.str.replace("_", "-").value_counts().plot.bar(ax=axes[3], title="clips per split", rot=20)
    fig.tight_layout()
    return fig


def oracle_table(root: str | Path) -> pd.DataFrame:
    """oracle.json flattened to one row per (split, metric) (re-scored first if an older oracle wrote it)."""
    from avlab.tasks.voiceface.oracle import load_oracle

    data = load_oracle(root)
    rows = []

    def walk(prefix, node, split):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}/{k}" if prefix else k, v, split)
        else:
            rows.append({"split": split, "metric": prefix, "oracle": node})

    for split, node in data.items():
        walk("", node, split)
    return pd.DataFrame(rows)


def voice_params_table(root: str | Path) -> pd.DataFrame:
    lat = json.loads((Path(root) / "latents" / "identities.json").read_text())
    return pd.DataFrame([{"identity": i["name"], "split": i["split"], "gender": i["gender"], **i["voice"]}
                         for i in lat["identities"]])


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    return path


# --- media: look and listen -----------------------------------------------------------------------
def one_clip_per_identity(meta: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first clip of ``n`` identities, alternating genders so both are heard."""
    firsts = meta.drop_duplicates("identity")
    if "gender" in firsts:
        firsts = firsts.assign(_k=firsts.groupby("gender").cumcount()).sort_values(["_k", "gender"]).drop(columns="_k")
    return firsts.head(n)


def speakers_html(root: str | Path, meta: pd.DataFrame, n: int = 6, thumb: int = 96) -> str:
    """One card per speaker: the face, a voice player, identity, gender and age (self-contained)."""
    rows = one_clip_per_identity(meta, n)
    cards = []
    for r in rows.itertuples():
        parts = [inline.img_html(inline.thumbnail_png(root, r.path, thumb), thumb, r.path),
                 inline.clip_audio_html(root, r.path)]
        caption = f"{inline.label(r.identity)}<br>{gender_label(r.gender)}, age {r.age:.2f}" if "gender" in meta \
            else inline.label(r.identity)
        cards.append(inline.card(parts, caption))
    return inline.gallery(cards)


def clips_html(root: str | Path, meta: pd.DataFrame, n: int = 3, seconds: float = 3.0, width: int = 192) -> str:
    """``n`` clips (of different speakers) as HTML5 video with sound, captioned with what is said."""
    rows = one_clip_per_identity(meta, n)
    cards = [inline.card([inline.video_html(Path(root) / r.path, width, seconds)],
                         f"{inline.label(r.identity)}: <i>{inline.label(getattr(r, 'text', ''))}</i>", width + 10)
             for r in rows.itertuples()]
    return inline.gallery(cards)


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """Gender codes spelled out (female / male) for display."""
    return df.assign(gender=df.gender.map(gender_label)) if "gender" in df else df
