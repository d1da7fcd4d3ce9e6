"""Attention heatmaps of a sound-localisation run: where it looks, which bands it listens to (notebook 08).

CMAC (DESIGN §2.3) records four maps per clip: α_v (vision alone) and β_v (audio-guided) over the
frame's H·W positions, α_a (audio alone) and β_a (vision-guided) over the spectrogram's frequency
rows. The protocol saves them per evaluated test clip in ``RUN/attention.npz`` (one layer, the
final weights); everything here reads that file and never re-runs a model. The frame and the
log-mel a map belongs to are recomputed from the data by the task's own dataset at the run's task
config (the evaluation view: the middle key frame, the first audio window), and per-clip cIoU and
band mass come from :mod:`avlab.eval.localisation`, so a clip's number here is the protocol's
number for that clip (up to the float16 the maps are saved in).

Tables are pure functions of the saved maps, figures of the maps and the data; the notebook shows
and saves them, and :func:`attention_browser` (a live widget) is built from the same figures.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from avlab.data.vggsound import KEY_FRAMES, key_frame_indices
from avlab.eval import localisation as L

SPATIAL, SPECTRAL = ("alpha_v", "beta_v"), ("alpha_a", "beta_a")
NAMES = {"alpha_v": "α_v (vision alone)", "beta_v": "β_v (audio-guided)",
         "alpha_a": "α_a (audio alone)", "beta_a": "β_a (vision-guided)"}
KEY = KEY_FRAMES // 2  # the cached frame the maps were computed on and the box annotates
BOX_COLOUR, PRED_COLOUR, BAND_COLOUR = "#39ff14", "white", "tab:green"


# --- a run's saved maps -------------------------------------------------------------------------
@dataclass
class AttentionRun:
    """An evaluated sound-localisation run: ``eval.json``, the saved maps (float32) and each clip's
    file, label, path and key-frame box (pixels, NaN when the source is off screen)."""
    run: Path
    name: str
    eval: dict
    data: Path
    files: np.ndarray
    labels: np.ndarray
    paths: np.ndarray
    boxes: np.ndarray
    image_size: int
    maps: dict[str, np.ndarray]
    workers: int = 1

    @property
    def spatial(self) -> list[str]:
        return [m for m in SPATIAL if m in self.maps]

    @property
    def spectral(self) -> list[str]:
        return [m for m in SPECTRAL if m in self.maps]

    @cached_property
    def dataset(self):
        """The run's test split through the task's dataset at the run's task config (evaluation
        view): the same decoded frames and log-mel the evaluation fed the model."""
        from avlab.registry import TASKS
        from avlab.runs import load_config

        cfg, _ = load_config(self.run)
        return TASKS.get(cfg.task).dataset(self.data, cfg.task_config(), ("test",), train=False,
                                           workers=self.workers, progress=False)

    @cached_property
    def _position(self) -> dict[str, int]:
        return {c.file: i for i, c in enumerate(self.dataset.clips)}

    def row(self, file: str) -> int:
        """The clip's row in the saved maps."""
        hits = np.flatnonzero(self.files == file)
        if not len(hits):
            raise KeyError(f"{file!r} is not among the {len(self.files)} clips {self.run} evaluated")
        return int(hits[0])

    def frame(self, file: str, k: int = KEY) -> np.ndarray:
        """RGB uint8 cached frame ``k`` of the clip (``KEY``: the one the maps were computed on)."""
        return self.dataset.frame(self._position[file], k)

    def log_mel(self, file: str) -> np.ndarray:
        """(n_mels, T) log-mel of the window the evaluation fed the audio encoder."""
        ds = self.dataset
        return ds.collate([ds[self._position[file]]])["audio"][0].numpy()

    def box(self, file: str, k: int = KEY):
        """[x1, y1, x2, y2] pixels of the sounding object on cached frame ``k``, or None. Off the key
        frame only a synthetic set knows it (``latents/boxes.npz``); a real set annotates one frame."""
        if k == KEY:
            b = self.boxes[self.row(file)]
            return None if np.isnan(b).any() else b.tolist()
        latents, stamp = self.data / "latents" / "boxes.npz", self.data / "synth_config.json"
        if not (latents.exists() and stamp.exists()):
            return None
        per_frame = np.load(latents)[file]
        b = per_frame[key_frame_indices(len(per_frame))[k]] * self.image_size / json.loads(stamp.read_text())["size"]
        return None if np.isnan(b).any() else b.tolist()

    @cached_property
    def bands(self) -> dict[str, list]:
        """The clips' true frequency bands (Hz) from a synthetic set's ``meta.csv``; {} for real data."""
        meta = self.data / "meta.csv"
        if not meta.exists():
            return {}
        table = pd.read_csv(meta, usecols=lambda c: c in ("file", "bands_hz"))
        return {} if "bands_hz" not in table else \
            {f: json.loads(b) for f, b in zip(table.file, table.bands_hz) if isinstance(b, str) and b}

    def bin_edges_hz(self, n_bins: int) -> np.ndarray:
        """Hz edges of the ``n_bins`` rows of a frequency map (the protocol's own mapping)."""
        mel = self.dataset.mel
        return L.mel_bin_edges_hz(mel.n_mels, mel.sample_rate, n_bins)


def load_attention(run: str | Path, name: str | None = None, workers: int = 1) -> AttentionRun:
    """The saved maps of an evaluated sound-localisation run (``avlab eval`` wrote attention.npz)."""
    run = Path(run)
    path = run / "attention.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run} an evaluated sound-localisation run "
                                f"(avlab eval --run {run})?")
    result = json.loads((run / "eval.json").read_text())
    npz = np.load(path)
    maps = {k: npz[k].astype(np.float32) for k in SPATIAL + SPECTRAL if k in npz}
    return AttentionRun(run, name or run_label(run, result), result, Path(result["data"]),
                        npz["files"].astype(str), npz["labels"].astype(str), npz["paths"].astype(str),
                        npz["boxes"].astype(np.float32), int(npz["image_size"]), maps, workers)


def describe(ar: AttentionRun) -> str:
    """One line: the run, its data, how many clips were evaluated and annotated, the maps' sizes."""
    annotated = int((~np.isnan(ar.boxes).any(axis=1)).sum())
    sizes = ", ".join(f"{m} {'×'.join(map(str, ar.maps[m].shape[1:]))}" for m in ar.spatial + ar.spectral)
    return (f"{ar.name} on {ar.data}: {len(ar.files)} test clips, {annotated} with a box; maps {sizes} "
            f"(frame {ar.image_size}²)")


def run_label(run: Path, result: dict) -> str:
    """``<folder> (<method>)``: the name the browser and the run table give a run."""
    return f"{Path(run).name} ({result.get('method', '?')})"


# --- per-clip numbers ---------------------------------------------------------------------------
def ciou_table(maps: dict[str, np.ndarray], boxes: np.ndarray, image_size: int,
               threshold: str = "value") -> pd.DataFrame:
    """Per clip: ``ciou_<map>`` of every spatial map and ``ciou_centre_prior`` (the centre-bias
    map, the chance reference), by :func:`avlab.eval.localisation.clip_ciou` against the clip's box;
    NaN where the clip has no box (the sound is off screen)."""
    shape = (image_size, image_size)
    names = [m for m in SPATIAL if m in maps]
    grid = maps[names[0]].shape[1:] if names else (8, 8)
    prior = L.centre_prior(grid)
    cols: dict[str, list] = {f"ciou_{m}": [] for m in (*names, "centre_prior")}
    for i, b in enumerate(np.asarray(boxes, float)):
        known = not np.isnan(b).any()
        for m in names:
            cols[f"ciou_{m}"].append(L.clip_ciou(maps[m][i], [b], shape, threshold) if known else np.nan)
        cols["ciou_centre_prior"].append(L.clip_ciou(prior, [b], shape, threshold) if known else np.nan)
    return pd.DataFrame(cols)


def band_table(maps: dict[str, np.ndarray], bands: list, edges_hz: np.ndarray) -> pd.DataFrame:
    """Per clip: ``mass_<map>`` (share of a frequency map inside the clip's true bands,
    :func:`avlab.eval.localisation.band_mass`) and ``mass_uniform`` (the share a flat map puts
    there: its chance); NaN where the bands are unknown (``None``)."""
    names = [m for m in SPECTRAL if m in maps]
    cols: dict[str, list] = {f"mass_{m}": [] for m in (*names, "uniform")}
    for i, b in enumerate(bands):
        mask = L.band_mask(b, edges_hz) if b else None
        for m in names:
            cols[f"mass_{m}"].append(L.band_mass(maps[m][i], mask) if mask is not None else np.nan)
        cols["mass_uniform"].append(float(mask.mean()) if mask is not None else np.nan)
    return pd.DataFrame(cols)


def clip_table(ar: AttentionRun, threshold: str = "value") -> pd.DataFrame:
    """One row per evaluated clip: file, label, path, the key-frame box, per-map cIoU beside the
    centre prior, and (synthetic sets) the frequency maps' mass in the true bands."""
    table = pd.DataFrame({"file": ar.files, "label": ar.labels, "path": ar.paths,
                          **{k: ar.boxes[:, j] for j, k in enumerate(("x1", "y1", "x2", "y2"))}})
    parts = [table, ciou_table(ar.maps, ar.boxes, ar.image_size, threshold)]
    if ar.spectral and ar.bands:
        edges = ar.bin_edges_hz(ar.maps[ar.spectral[0]].shape[1])
        parts.append(band_table(ar.maps, [ar.bands.get(f) for f in ar.files], edges))
    return pd.concat(parts, axis=1)


def pick_clips(table: pd.DataFrame, clips=(), label: str = "", order: str = "worst", n: int = 3,
               map_name: str = "beta_v") -> list[str]:
    """The clips to look at: ``clips`` (files) as given, else the ``n`` annotated clips (of class
    ``label`` if given) with the lowest (``worst``) or highest (``best``) cIoU of ``map_name``."""
    if clips:
        unknown = sorted(set(clips) - set(table.file))
        if unknown:
            raise KeyError(f"not among the evaluated clips: {unknown}")
        return list(clips)
    if f"ciou_{map_name}" not in table:
        raise KeyError(f"this run has no {map_name} map; it has {[c[5:] for c in map_columns(table)]}")
    if order not in ("worst", "best"):
        raise ValueError(f"order must be 'worst' or 'best', got {order!r}")
    rows = table[table.label == label] if label else table
    if label and rows.empty:
        raise KeyError(f"no evaluated clip of class {label!r}; classes: {sorted(table.label.unique())}")
    rows = rows.dropna(subset=[f"ciou_{map_name}"]).sort_values(f"ciou_{map_name}", ascending=order == "worst",
                                                                 kind="stable")
    return rows.file.head(n).tolist()


def map_columns(table: pd.DataFrame) -> list[str]:
    """The cIoU columns of a clip table, the maps before the centre prior."""
    return [c for c in table if c.startswith("ciou_")]


def class_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per class and map: annotated clips, cIoU@0.5, AUC and mean cIoU (:func:`L.summary`)."""
    rows = []
    for label, part in table.groupby("label"):
        for col in map_columns(table):
            c = part[col].dropna()
            if len(c):
                rows.append({"label": label, "map": col.removeprefix("ciou_"), **L.summary(c)})
    return pd.DataFrame(rows)


def run_summary(runs: list[AttentionRun], threshold: str = "value") -> pd.DataFrame:
    """Per run and map: the summary recomputed from the saved maps beside ``eval.json``'s (they
    differ only by the float16 the maps are saved in), then the centre prior."""
    rows = []
    for ar in runs:
        table = clip_table(ar, threshold)
        loc = ar.eval["metrics"]["test"]["localisation"]
        for col in map_columns(table):
            name = col.removeprefix("ciou_")
            reported = loc.get(name, {}) if threshold == "value" else loc.get(name, {}).get("median", {})
            rows.append({"run": ar.name, "map": name, **L.summary(table[col].dropna()),
                         "eval_json_mean_ciou": reported.get("mean_ciou", np.nan)})
    return pd.DataFrame(rows)


# --- figures of one clip -------------------------------------------------------------------------
def _draw_box(ax, box, dashed: bool = False) -> None:
    from matplotlib.patches import Rectangle

    if box is not None:
        x1, y1, x2, y2 = box
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=BOX_COLOUR, lw=1.8,
                               ls="--" if dashed else "-"))


def draw_overlay(ax, frame: np.ndarray, heatmap: np.ndarray | None, box, threshold: str = "value",
                 box_dashed: bool = False) -> None:
    """The frame, the heatmap as the protocol sees it (resized, min-max normalised) on top, the
    predicted region cIoU scores outlined in white and the true box in green."""
    size = frame.shape[:2]
    ax.imshow(frame)
    if heatmap is not None:
        ax.imshow(L.normalise(L.resize_map(heatmap, size)), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.contour(L.prediction(heatmap, size, threshold), levels=[0.5], colors=PRED_COLOUR, linewidths=1.2)
    _draw_box(ax, box, box_dashed)
    ax.set(xticks=[], yticks=[], xlim=(-0.5, size[1] - 0.5), ylim=(size[0] - 0.5, -0.5))


def overlay_figure(ar: AttentionRun, file: str, frame: int = KEY, threshold: str = "value"):
    """The clip's frame with its box, then each spatial map over it (α_v, β_v), with its cIoU and
    the centre prior's. The maps belong to the key frame; another cached frame (``frame``) shows
    how the scene moves under them, with its own box where the set knows it (else the key frame's,
    dashed)."""
    import matplotlib.pyplot as plt

    i = ar.row(file)
    img = ar.frame(file, frame)
    shape = (ar.image_size, ar.image_size)
    scored = ar.box(file)  # the key frame's: what cIoU is computed against
    box = ar.box(file, frame)
    dashed = box is None and frame != KEY
    box = scored if box is None else box
    fig, axes = plt.subplots(1, 1 + len(ar.spatial), figsize=(2.6 * (1 + len(ar.spatial)), 2.9))
    draw_overlay(axes[0], img, None, box, threshold, dashed)
    where = "key frame" if frame == KEY else f"cached frame {frame} of 0–{KEY_FRAMES - 1} (maps: key frame {KEY})"
    axes[0].set_title(where + ("" if scored else "\nsound off screen: no box"), fontsize=8)
    for ax, m in zip(axes[1:], ar.spatial):
        draw_overlay(ax, img, ar.maps[m][i], box, threshold, dashed)
        score = f"cIoU {L.clip_ciou(ar.maps[m][i], [scored], shape, threshold):.2f}" if scored else "not scored"
        ax.set_title(f"{NAMES[m]}\n{score}", fontsize=9)
    title = f"{ar.name} · {file} · {ar.labels[i]}"
    if scored and ar.spatial:
        prior = L.centre_prior(ar.maps[ar.spatial[0]].shape[1:])
        title += f" · centre prior cIoU {L.clip_ciou(prior, [scored], shape, threshold):.2f}"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def band_rows(bands, edges_hz: np.ndarray) -> list[tuple[float, float]]:
    """Each band (Hz) as a span on the frequency-map axis (row k covers k..k+1), interpolated
    inside the rows' Hz edges."""
    rows = np.arange(len(edges_hz))
    return [(float(np.interp(lo, edges_hz, rows)), float(np.interp(hi, edges_hz, rows))) for lo, hi in bands or []]


def spectrogram_figure(ar: AttentionRun, file: str):
    """The log-mel the audio encoder read, on the frequency maps' rows, with the true bands shaded
    (synthetic sets), beside α_a and β_a over the same rows with their mass in the bands and the
    flat map's (chance)."""
    import matplotlib.pyplot as plt

    i = ar.row(file)
    spec = ar.log_mel(file)
    mel = ar.dataset.mel
    n_bins = ar.maps[ar.spectral[0]].shape[1] if ar.spectral else spec.shape[0]
    edges = ar.bin_edges_hz(n_bins)
    bands = ar.bands.get(file)
    mask = L.band_mask(bands, edges) if bands else None
    spans = band_rows(bands, edges)
    fig, axes = plt.subplots(1, 1 + len(ar.spectral), figsize=(4.2 + 1.7 * len(ar.spectral), 3.0), sharey=True,
                             gridspec_kw={"width_ratios": [3.2] + [1] * len(ar.spectral)}, squeeze=False)
    axes = axes[0]
    seconds = spec.shape[1] * mel.hop_length / mel.sample_rate
    axes[0].imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=[0, seconds, 0, n_bins])
    for lo, hi in spans:
        axes[0].axhspan(lo, hi, fc="none", ec=BAND_COLOUR, lw=1.5, ls="--")
    ticks = np.arange(0, n_bins + 1, max(1, n_bins // 8))
    axes[0].set_yticks(ticks, [f"{edges[t]:.0f}" for t in ticks], fontsize=7)
    axes[0].set(xlabel="time (s)", ylabel="Hz (frequency-map rows)",
                title=f"log-mel · {ar.labels[i]}" + ("" if bands else " · bands unknown (real data)"))
    axes[0].title.set_fontsize(9)
    y = np.arange(n_bins) + 0.5
    for ax, m in zip(axes[1:], ar.spectral):
        att = ar.maps[m][i]
        if mask is not None:
            for k in np.flatnonzero(mask):
                ax.axhspan(k, k + 1, color=BAND_COLOUR, alpha=0.2, lw=0)
        ax.barh(y, att, height=0.9, color="tab:orange")
        ax.axvline(1.0 / n_bins, color="#555555", ls=":", lw=1, label="flat")
        if mask is None:
            mass = ""
        elif mask.any():
            mass = f"\nin bands {L.band_mass(att, mask):.2f} (flat {mask.mean():.2f})"
        else:  # the protocol counts a row in a band when its centre is: narrow bands can hold none
            mass = "\nno row centre in the bands"
        ax.set_title(NAMES[m] + mass, fontsize=8)
        ax.set(xlabel="attention", ylim=(0, n_bins))
    fig.suptitle(f"{ar.name} · {file}", fontsize=9)
    fig.tight_layout()
    return fig


# --- across clips --------------------------------------------------------------------------------
def ciou_histogram_figure(table: pd.DataFrame, ncols: int = 5):
    """Per class, the distribution of per-clip cIoU of each map beside the centre prior's; the
    dashed line is the 0.5 that cIoU@0.5 counts from."""
    import matplotlib.pyplot as plt

    classes = sorted(table.label[table[map_columns(table)].notna().any(axis=1)].unique())
    ncols = max(1, min(ncols, len(classes)))
    nrows = max(1, -(-len(classes) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.5 * ncols, 2.0 * nrows + 0.5), sharex=True, squeeze=False)
    bins = np.linspace(0, 1, 11)
    colours = {"ciou_alpha_v": "tab:blue", "ciou_beta_v": "tab:orange", "ciou_centre_prior": "#777777"}
    for ax, label in zip(axes.ravel(), classes):
        part = table[table.label == label]
        for col in map_columns(table):
            name = col.removeprefix("ciou_")
            ax.hist(part[col].dropna(), bins=bins, histtype="step", lw=1.5, color=colours.get(col),
                    ls=":" if name == "centre_prior" else "-", label=NAMES.get(name, name.replace("_", " ")))
        ax.axvline(0.5, color="black", ls="--", lw=0.8)
        ax.set_title(f"{label} ({part[map_columns(table)[0]].notna().sum()})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(classes):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("cIoU", fontsize=8)
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(names), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.0 * nrows + 0.5)))
    return fig


def failures(table: pd.DataFrame, map_name: str = "beta_v", n: int = 8) -> pd.DataFrame:
    """The ``n`` annotated clips where ``map_name`` localises worst (rows of the clip table, by file)."""
    return table.set_index("file").loc[pick_clips(table, order="worst", n=n, map_name=map_name)]


def failure_gallery_figure(ar: AttentionRun, worst: pd.DataFrame, map_name: str = "beta_v",
                           threshold: str = "value", ncols: int = 4):
    """Each of the ``worst`` clips (:func:`failures`): its key frame with the map, the predicted
    region and the true box, its cIoU beside the centre prior's."""
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, len(worst)))
    nrows = max(1, -(-len(worst) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.9 * nrows), squeeze=False)
    for ax, (file, r) in zip(axes.ravel(), worst.iterrows()):
        draw_overlay(ax, ar.frame(file), ar.maps[map_name][ar.row(file)], ar.box(file), threshold)
        ax.set_title(f"{file}\n{r.label}\ncIoU {r[f'ciou_{map_name}']:.2f} (prior {r.ciou_centre_prior:.2f})",
                     fontsize=7)
    for ax in axes.ravel()[len(worst):]:
        ax.axis("off")
    fig.suptitle(f"{ar.name}: the {len(worst)} worst clips by {NAMES[map_name]} "
                 "(white: predicted region, green: true box)", fontsize=9)
    fig.tight_layout()
    return fig


# --- the browser ---------------------------------------------------------------------------------
def clip_html(ar: AttentionRun, file: str, frame: int = KEY, threshold: str = "value") -> str:
    """The clip's two figures (overlays, spectrogram) as self-contained ``<img>`` markup."""
    import matplotlib.pyplot as plt

    from avlab.viz.display import png_bytes
    from avlab.viz.media import img_html

    parts = []
    for fig in (overlay_figure(ar, file, frame, threshold), spectrogram_figure(ar, file)):
        png = png_bytes(fig, dpi=90)
        width = int(fig.get_figwidth() * 90)
        plt.close(fig)
        parts.append(img_html(png, width=width, title=file))
    return "<div>" + "<br>".join(parts) + "</div>"


def clip_options(table: pd.DataFrame, label: str, map_name: str = "beta_v") -> list[tuple[str, str]]:
    """(caption, file) of a class's clips, worst cIoU first, clips without a box last."""
    col = f"ciou_{map_name}"
    rows = table[table.label == label] if label else table
    rows = rows.sort_values(col, na_position="last", kind="stable") if col in rows else rows
    return [(f"{r.file} · " + (f"cIoU {getattr(r, col):.2f}" if col in rows and not np.isnan(getattr(r, col))
                               else "no box"), r.file) for r in rows.itertuples()]


def attention_browser(runs: list[AttentionRun], map_name: str = "beta_v", threshold: str = "value"):
    """Choose a run (checkpoint or variant, each with its own attention.npz), a class, a clip
    (worst ``map_name`` cIoU first) and one of the cached frames; shows the clip's overlays and
    spectrogram. An ``ipywidgets.HTML`` whose value is replaced (not an Output widget, which can
    stall papermill's client), as in :func:`avlab.viz.clusters.cluster_browser`."""
    import ipywidgets as w

    tables: dict[int, pd.DataFrame] = {}

    def table_of(k: int) -> pd.DataFrame:
        if k not in tables:
            tables[k] = clip_table(runs[k], threshold)
        return tables[k]

    run_pick = w.Dropdown(options=[(r.name, k) for k, r in enumerate(runs)], description="run")
    class_pick = w.Dropdown(description="class")
    clip_pick = w.Dropdown(description="clip", layout=w.Layout(width="420px"))
    frame_pick = w.IntSlider(value=KEY, min=0, max=KEY_FRAMES - 1, description="frame",
                             tooltip=f"cached frames; {KEY} is the key frame the maps belong to")
    view = w.HTML()
    busy = [False]  # options being refilled: their own change events must not render

    def render(_=None):
        if not busy[0] and clip_pick.value:
            view.value = clip_html(runs[run_pick.value], clip_pick.value, frame_pick.value, threshold)

    def refresh(_=None):  # a run or a class was chosen: refill the classes (keeping the choice) and clips
        if busy[0]:
            return
        busy[0] = True
        try:
            table = table_of(run_pick.value)
            classes = sorted(table.label.unique())
            kept = class_pick.value if class_pick.value in classes else ""
            class_pick.options = [("all", "")] + [(c, c) for c in classes]
            class_pick.value = kept
            clip = clip_pick.value
            clip_pick.options = options = clip_options(table, kept, map_name)
            files = [f for _, f in options]  # new options select nothing (ipywidgets 8): keep the clip, else the first
            clip_pick.value = clip if clip in files else (files[0] if files else None)
        finally:
            busy[0] = False
        render()

    run_pick.observe(refresh, names="value")
    class_pick.observe(refresh, names="value")
    clip_pick.observe(render, names="value")
    frame_pick.observe(render, names="value")
    refresh()
    return w.VBox([w.HBox([run_pick, class_pick]), w.HBox([clip_pick, frame_pick]), view])
