"""The sound-localisation demo tab, "Where is the sound?": a clip → its key frame with the
audio-guided map β_v overlaid (and the annotated box), its log-mel spectrogram with the frequency
attention α_a / β_a beside it (and the true bands), and the class its sound is heard as.

The maps are the protocol's own (:func:`avlab.tasks.localisation.protocol.clip_outputs`: forward
hooks on the method's attention modules; a method without them, e.g. ``cid``, gives its
audio–visual similarity map as β_v), from the weights ``avlab eval`` scored. The class comes from
the audio embedding's logistic regression the protocol fitted and kept (``class_probe.npz``), so it
is what the run card's ``probe/linear/audio`` figure measured; the demo trains nothing.

A test clip and an upload go through the same reading: :func:`avlab.data.vggsound.decode_file`
(the dataset cache's decoder) and :func:`avlab.data.vggsound.evaluation_batch` (the evaluation
view: the middle key frame at the run's image size, the log-mel of the first ``crop_seconds`` of
sound). Every way an upload can be unusable raises :class:`UploadError` naming the file.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

import numpy as np
import torch

from avlab.data import media
from avlab.data.features import MelConfig
from avlab.data.uploads import VIDEO_EXTS, Limits, UploadError, check_upload, media_problem
from avlab.data.vggsound import KEY_FRAMES, decode_file, evaluation_batch, index_clips, read_boxes
from avlab.eval import localisation as L
from avlab.tasks.localisation.protocol import CLASS_PROBE_FILE, clip_outputs, read_bands

TEST_SPLIT = "test"
MAX_TEST_CLIPS = 60  # the picker's clips: annotated ones first, spread over the classes
MAX_VIDEO_SECONDS = 20.0  # a VGGSound clip is 10 s; the whole sound track is decoded
MAX_VIDEO_PIXELS = 1920 * 1080  # per frame
DISPLAY_SIDE = 256  # the key frame is shown enlarged to this side
TOP_CLASSES = 5
SAMPLE_RATE = 16_000  # decode_file's audio rate (the dataset cache's)
GREEK = {"alpha_a": "α_a", "beta_a": "β_a", "alpha_v": "α_v", "beta_v": "β_v"}


# --- the run's evaluation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassProbe:
    """The protocol's logistic regression on one modality's frozen embedding (sklearn's shapes)."""

    coef: np.ndarray  # (C, D), or (1, D) for two classes
    intercept: np.ndarray
    classes: list[str]
    modality: str

    @classmethod
    def load(cls, run: Path) -> "ClassProbe | None":
        """The probe ``avlab eval`` kept, or None when the run was never evaluated."""
        path = run / CLASS_PROBE_FILE
        if not path.exists():
            return None
        with np.load(path) as f:
            return cls(f["coef"], f["intercept"], f["classes"].tolist(), str(f["modality"]))

    def probabilities(self, embedding: np.ndarray) -> np.ndarray:
        """(C,) class probabilities of one embedding, as sklearn's ``predict_proba`` computes them."""
        scores = self.coef @ np.asarray(embedding, np.float64) + self.intercept
        if len(scores) == 1:  # two classes: one logit for the second
            p = 1.0 / (1.0 + np.exp(-scores[0]))
            return np.array([1.0 - p, p])
        e = np.exp(scores - scores.max())
        return e / e.sum()


def chance_warnings(result: dict | None) -> list[str]:
    """A warning per figure of ``eval.json`` that does not beat chance: β_v's cIoU@0.5 interval
    against the better of the centre-prior and uniform maps, and the audio probe's accuracy against
    1/#classes (a one-sided binomial test, as the protocol gives the probes no interval)."""
    from scipy.stats import binomtest

    if not result:
        return []
    test, chance = result["metrics"]["test"], result["chance"]["test"]
    out = []
    ci = result.get("ci", {}).get("test", {}).get("localisation", {}).get("beta_v", {}).get("ciou@0.5")
    floor = max((v["ciou@0.5"] for v in chance["localisation"].values()), default=None)
    if ci is not None and floor is not None and ci[0] <= floor:
        out.append(f"⚠ **β_v localises no better than chance** on the test clips (cIoU@0.5 "
                   f"{test['localisation']['beta_v']['ciou@0.5']:.3f}, 95 % interval {ci[0]:.3f}–{ci[1]:.3f}; a "
                   f"centre-prior map scores {floor:.3f}): read the heatmap as noise.")
    accuracy, n = test["probe"]["linear"].get("audio"), result["n_test_clips"]
    p_chance = chance["probe"]["classes"]
    if accuracy is not None and binomtest(round(accuracy * n), n, p_chance, "greater").pvalue >= 0.05:
        out.append(f"⚠ **The class is no better than chance**: the audio probe named {accuracy:.0%} of the "
                   f"{n} test clips right, chance is {p_chance:.0%}; read the class as a guess.")
    return out


# --- uploads ----------------------------------------------------------------------------------------
def read_video(path: str | os.PathLike, image_size: int, crop_seconds: float, limits: Limits = Limits()
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(audio, key frames, notes on how it was read) of an uploaded video, through the test clips'
    decoder (:func:`avlab.data.vggsound.decode_file`)."""
    path = check_upload(path, VIDEO_EXTS, limits, "video")
    name, notes = path.name, []
    try:
        info = media.probe(path)
        if info.width * info.height > MAX_VIDEO_PIXELS:
            raise UploadError(f"video {name!r} is {info.width}×{info.height}; the limit is 1920×1080 pixels a frame "
                              "(scale it down)")
        if info.duration > MAX_VIDEO_SECONDS:
            raise UploadError(f"video {name!r} is {info.duration:.1f} s long; the limit is {MAX_VIDEO_SECONDS:.0f} s "
                              "(trim it)")
        if info.sample_rate == 0:
            raise UploadError(f"video {name!r} has no sound: there is nothing to localise")
        audio, frames = decode_file(path, image_size, notes)
    except media.MediaError as exc:
        raise media_problem(exc, name, "video") from None
    seconds = len(audio) / SAMPLE_RATE
    heard = (f"its first {crop_seconds:g} s of sound" if seconds >= crop_seconds else
             f"all its {seconds:.2f} s of sound (padded with silence to {crop_seconds:g} s)")
    squashed = "" if info.width == info.height else " (squashed to a square, as the dataset does)"
    read = (f"video {name!r}: {info.width}×{info.height}, {info.duration:.1f} s; its middle frame resized to "
            f"{image_size}×{image_size}{squashed} and {heard} as a log-mel")
    silent = [] if np.abs(audio).max(initial=0) > 1e-4 else [f"video {name!r} is silent: β_v has no sound to follow"]
    return audio, frames, [read, *silent, *notes]


# --- the localiser ----------------------------------------------------------------------------------
@dataclass
class Located:
    """What a clip's sound points at: the maps, the inputs they were computed on, and its class."""

    name: str
    frame: np.ndarray  # RGB uint8 (S, S, 3): the key frame the encoder saw
    mel: np.ndarray  # (n_mels, T): the log-mel it heard
    maps: dict[str, np.ndarray]  # beta_v (h, w) and, for attention methods, alpha_v, alpha_a (F,), beta_a
    classes: list[str] = field(default_factory=list)  # best first; empty before evaluation
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    true_class: str | None = None  # known for test clips only
    boxes: list[list[float]] | None = None  # annotated boxes in [0, 1] of the frame
    bands: list[list[float]] | None = None  # the sound's true bands in Hz (synthetic sets)
    notes: list[str] = field(default_factory=list)
    key: str | None = None  # the test clip's path: same key, same image files

    def label(self, k: int = TOP_CLASSES) -> dict[str, float] | None:
        """{class: probability} of the ``k`` likeliest classes (a ``gr.Label`` value)."""
        return {c: float(p) for c, p in zip(self.classes[:k], self.probabilities[:k])} or None

    def ciou(self) -> float | None:
        """β_v's cIoU with the box at the frame's size, as the protocol scores it (None: no box)."""
        if not self.boxes:
            return None
        s = self.frame.shape[0]
        return L.clip_ciou(self.maps["beta_v"], [[v * s for v in b] for b in self.boxes], (s, s))


class Localiser:
    """A run ready to localise the sound of test clips and uploads (no Gradio here, so tests can
    check its maps against the protocol's ``attention.npz``)."""

    def __init__(self, run: str | os.PathLike, limits: Limits = Limits(), max_test_clips: int = MAX_TEST_CLIPS):
        from avlab.eval.run_eval import selected_weights
        from avlab.runs import load_run

        self.run, self.limits = Path(run), limits
        path = self.run / "eval.json"
        self.result = json.loads(path.read_text()) if path.exists() else None
        # The weights and the data the protocol scored: the probe was fitted on those embeddings.
        weights = (self.result or {}).get("weights") or selected_weights(self.run)
        self.cfg, self.method = load_run(self.run, weights=weights)
        self.task_cfg = self.cfg.task_config()
        self.mel = MelConfig(n_mels=self.task_cfg.n_mels)  # as the task's dataset builds it
        self.probe = ClassProbe.load(self.run)
        self.not_evaluated = "" if self.probe and self.result else (
            f"This run has not been evaluated, so it has no class probe: run `avlab eval --run {self.run.name}` "
            "first to name the class")
        self.data = Path((self.result or {}).get("data") or self.cfg.data)
        self.test_clips, self.missing_test_set, self.boxes, self.bands = [], "", {}, {}
        self._pick_test_clips(max_test_clips)
        self._maps_lock = threading.Lock()  # a Recorder hooks the shared model: one clip at a time
        self._located: dict[str, Located] = {}

    def _pick_test_clips(self, max_clips: int) -> None:
        """Up to ``max_clips`` test clips, annotated ones first, taken in turn from each class."""
        if not self.data.is_dir():
            self.missing_test_set = f"the run's dataset ({self.data.name}) is not on this machine: uploads only"
            return
        clips, _ = index_clips(self.data, self.cfg.n_workers)
        self.boxes, self.bands = read_boxes(self.data), read_bands(self.data)
        by_class: dict[str, list] = {}
        for c in sorted((c for c in clips if c.split == TEST_SPLIT), key=lambda c: (c.file not in self.boxes, c.path)):
            by_class.setdefault(c.label, []).append(c)
        if not by_class:
            self.missing_test_set = f"the run's dataset has no {TEST_SPLIT} clips: uploads only"
            return
        picked = [c for turn in zip_longest(*by_class.values()) for c in turn if c][:max_clips]
        self.test_clips = sorted(picked, key=lambda c: (c.file not in self.boxes, c.path))

    def test_clip_choices(self) -> list[tuple[str, str]]:
        """(label, clip path) per test clip: "Q3u88puxnxk_000016 · cross_solid_02 · boxed"."""
        return [(f"{c.file} · {c.label}" + (" · boxed" if c.file in self.boxes else " · no box"), c.path)
                for c in self.test_clips]

    def locate_test_clip(self, path: str) -> Located:
        clip = next((c for c in self.test_clips if c.path == path), None)
        if clip is None:
            raise UploadError(f"{path!r} is not one of this demo's test clips")
        if path not in self._located:
            try:
                audio, frames = decode_file(self.data / clip.path, self.task_cfg.image_size)
            except media.MediaError as exc:  # a damaged clip of the set: said in the page, like an upload's
                raise media_problem(exc, Path(path).name, "test clip") from None
            self._located[path] = self._locate(Path(path).name, audio, frames, [], key=path, true_class=clip.label,
                                               boxes=self.boxes.get(clip.file), bands=self.bands.get(clip.file))
        return self._located[path]

    def locate_upload(self, path: str | os.PathLike) -> Located:
        audio, frames, notes = read_video(path, self.task_cfg.image_size, self.task_cfg.crop_seconds, self.limits)
        return self._locate(Path(path).name, audio, frames, notes)

    def locate(self, upload=None, test_clip: str | None = None) -> Located:
        """The maps and class of an upload, else of a test clip."""
        if upload:
            return self.locate_upload(upload)
        if not test_clip:
            raise UploadError("give a clip: pick a test clip or upload a video")
        if not self.test_clips:
            raise UploadError(f"no test clips ({self.missing_test_set}); upload a video")
        return self.locate_test_clip(test_clip)

    @torch.no_grad()
    def _locate(self, name: str, audio: np.ndarray, frames: np.ndarray, notes: list[str], **known) -> Located:
        batch = evaluation_batch(audio, frames, self.task_cfg.crop_seconds, self.mel)
        with self._maps_lock:
            out = {k: v[0].float().numpy() for k, v in clip_outputs(self.method, batch).items()}
        maps = {k: v for k, v in out.items() if not k.startswith("emb.")}
        located = Located(name, frames[KEY_FRAMES // 2], batch["audio"][0].numpy(), maps, notes=notes, **known)
        if self.probe is not None:
            p = self.probe.probabilities(out[f"emb.{self.probe.modality}"])
            order = np.argsort(-p, kind="stable")
            located.classes, located.probabilities = [self.probe.classes[i] for i in order], p[order]
        return located


# --- pictures ---------------------------------------------------------------------------------------
def heatmap_overlay(frame: np.ndarray, heatmap: np.ndarray, boxes=None, side: int = DISPLAY_SIDE,
                    alpha: float = 0.5) -> np.ndarray:
    """RGB uint8 (side, side, 3): the frame enlarged with the heatmap blended in (jet, resized and
    min-max normalised as the protocol scores it), the outline of the protocol's prediction (value
    ≥ 0.5) in black, and the annotated boxes ([0, 1] of the frame) in white."""
    import cv2

    big = cv2.resize(frame, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    heat = L.normalise(L.resize_map(heatmap, (side, side)))
    colour = cv2.applyColorMap((heat * 255).round().astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    out = np.ascontiguousarray(((1 - alpha) * big + alpha * colour).round().clip(0, 255).astype(np.uint8))
    contours, _ = cv2.findContours((heat >= 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (0, 0, 0), 1)
    for x1, y1, x2, y2 in boxes or []:
        cv2.rectangle(out, (round(x1 * side), round(y1 * side)), (round(x2 * side) - 1, round(y2 * side) - 1),
                      (255, 255, 255), 2)
    return out


def spectrogram_image(located: Located, mel: MelConfig) -> np.ndarray:
    """RGB uint8 picture of the log-mel the encoder heard and, beside it on the same frequency axis,
    α_a and β_a (one step per row of the encoder's frequency map; dashed: uniform attention); the
    true bands shaded when the data knows them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_mels, n_frames = located.mel.shape
    edges_hz = L.mel_bin_edges_hz(n_mels, mel.sample_rate, n_mels)  # channel k starts at edges_hz[k]
    fig = Figure(figsize=(7.5, 3.8), dpi=100, layout="constrained")
    spec, att = fig.subplots(1, 2, sharey=True, width_ratios=[3, 1])
    spec.imshow(located.mel, origin="lower", aspect="auto", cmap="magma",
                extent=(0, n_frames * mel.hop_ms / 1000, 0, n_mels))
    ticks = np.linspace(0, n_mels, 6)
    spec.set(xlabel="time (s)", ylabel="frequency (Hz)", yticks=ticks,
             yticklabels=[f"{np.interp(t, np.arange(n_mels + 1), edges_hz):.0f}" for t in ticks],
             title="log-mel heard (first window)")
    for k, (lo, hi) in enumerate(located.bands or []):
        y0, y1 = np.interp([lo, hi], edges_hz, np.arange(n_mels + 1))
        att.axhspan(y0, y1, color="tab:green", alpha=0.3, lw=0, label=None if k else "true band")
        for y in (y0, y1):  # lines, not shading, over the spectrogram: it stays readable
            spec.axhline(y, color="lime", ls="--", lw=1)
    found = [k for k in ("alpha_a", "beta_a") if k in located.maps]
    for k, colour in zip(found, ("tab:blue", "tab:orange")):
        a = located.maps[k]
        att.stairs(a, np.linspace(0, n_mels, len(a) + 1), orientation="horizontal", color=colour, lw=2,
                   label=f"{GREEK[k]} ({'audio alone' if k == 'alpha_a' else 'vision-guided'})")
    if found:
        att.axvline(1 / len(located.maps[found[0]]), color="grey", ls="--", lw=1, label="uniform")
        att.set(xlabel="attention", title="frequency attention", xlim=(0, None))
    else:
        att.text(0.5, n_mels / 2, "no frequency\nattention\n(this method\nhas none)", ha="center", va="center")
        att.set(xticks=[], title="frequency attention")
    if found or located.bands:
        fig.legend(loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# --- the tab ----------------------------------------------------------------------------------------
def summary_markdown(located: Located, mel: MelConfig, warnings: list[str] = (), not_evaluated: str = "") -> str:
    """Warnings first, then the class, the box and the bands, and how the clip was read."""
    lines = []
    if located.classes:
        verdict = "" if located.true_class is None else (
            " ✓" if located.classes[0] == located.true_class else f" (true class: {located.true_class})")
        lines.append(f"**Heard as {located.classes[0]}** ({located.probabilities[0]:.0%}){verdict}.")
    else:
        lines.append(f"**No class**: {not_evaluated}.")
    ciou = located.ciou()
    if ciou is not None:
        lines.append(f"- β_v against the white box: cIoU {ciou:.2f} (the protocol counts ≥ 0.5 as found).")
    elif located.key is not None:
        lines.append("- No box: this clip's sound is not annotated (its source may be off screen).")
    else:
        lines.append("- The box and the true class are unknown for uploads.")
    if located.bands and "alpha_a" in located.maps:
        n = len(located.maps["alpha_a"])
        mask = L.band_mask(located.bands, L.mel_bin_edges_hz(mel.n_mels, mel.sample_rate, n))
        if mask.any():  # as the protocol measures it: the rows whose centre lies in a band
            shares = ", ".join(f"{GREEK[k]} {L.band_mass(located.maps[k], mask):.0%}" for k in ("alpha_a", "beta_a")
                               if k in located.maps)
            lines.append(f"- Attention on the rows inside the true bands: {shares} (uniform attention: "
                         f"{mask.mean():.0%}).")
        else:
            lines.append(f"- The true bands are narrower than the {n} rows of the frequency attention: no row's "
                         "centre lies inside them.")
    lines += [f"- {n}" for n in located.notes]
    return "\n\n".join([*warnings, "\n".join(lines)])


class LocalisationTabs:
    """What the generic demo page asks of a task: an ``intro`` line and ``render(files)``."""

    def __init__(self, localiser: Localiser):
        self.localiser = localiser
        self.warnings = chance_warnings(localiser.result)
        self.intro = ("sound localisation: where in the frame the sound comes from (β_v, where the clip's audio "
                      "embedding matches the picture), which frequencies carry it (α_a from the sound alone, β_a "
                      "guided by the picture) and what it is (the audio embedding's linear probe from `avlab eval`). "
                      "Test clips are from the test split.")
        if localiser.not_evaluated:
            self.intro += f"\n\n**⚠ {localiser.not_evaluated}.**"
        if localiser.missing_test_set:
            self.intro += f" *{localiser.missing_test_set}*"

    def render(self, files) -> None:
        """Create the tab inside the current ``gr.Blocks``."""
        import gradio as gr

        from avlab.tasks.demo_widgets import friendly, upload_paths

        localiser = self.localiser
        choices = localiser.test_clip_choices()

        @friendly
        def locate(test_clip, video):
            located = localiser.locate(upload_paths(video)[0] if video else None, test_clip)

            return (files.picture(heatmap_overlay(located.frame, located.maps["beta_v"], located.boxes), located.key,
                                  "frame"),
                    files.picture(spectrogram_image(located, localiser.mel), located.key, "spectrogram"), located.label(),
                    summary_markdown(located, localiser.mel, self.warnings, localiser.not_evaluated))

        with gr.Tab("Where is the sound?"):
            with gr.Row():
                with gr.Column(scale=1):
                    clip = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="A test clip")
                    video = gr.File(file_types=list(VIDEO_EXTS),
                                    label=f"…or your own short video with sound (at most {MAX_VIDEO_SECONDS:.0f} s; "
                                          "used instead of the test clip)")
                    go = gr.Button("Find the sound", variant="primary")
                    heard = gr.Label(num_top_classes=TOP_CLASSES, label="Heard as (audio linear probe)")
                with gr.Column(scale=2):
                    frame = gr.Image(label="β_v over the key frame (black: the protocol's prediction; white: the "
                                           "annotated box)", interactive=False)
                    spectrum = gr.Image(label="The sound and where its attention goes (green: the true bands)",
                                        interactive=False)
                    notes = gr.Markdown()
            go.click(locate, [clip, video], [frame, spectrum, heard, notes], api_name="locate")


def demo_tabs(run, limits: Limits = Limits(), **_ignored) -> LocalisationTabs:
    return LocalisationTabs(Localiser(run, limits=limits))
