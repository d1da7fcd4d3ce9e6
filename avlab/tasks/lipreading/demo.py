"""The lip-reading demo tab: a mouth clip → the ROI the model saw, its five likeliest words, and
the top word's homophenes.

Words come from the run's frozen visual front-end and the back-end the protocol trained and
scored (``lipreading_backend.safetensors``, written by ``avlab eval``): the demo trains nothing of
its own, so what it shows is what the run card's ``frozen`` figures measured. Only the video is
read — a lip reader never hears the word.

A test clip goes through the evaluation's preprocessing (the cached grey ROI, then the centre
crop). An upload is decoded by our own readers: the frames spanning LRW's 1.16 s (29 frames at
25 fps) around its middle, where an LRW clip has its word; the mouth as the data reader finds it
(:func:`avlab.data.lrw.crop_mouth`: LRW's fixed box, a small video taken as a mouth ROI, or the
lower third of a Haar face box); resized to the run's ROI size. Every way an upload can be
unusable raises :class:`UploadError` with a message naming the file and the problem.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avlab.data import media
from avlab.data.lrw import FPS, N_FRAMES, NoMouthError, build_cache, crop_mouth, index_lrw, mouth_roi
from avlab.data.uploads import VIDEO_EXTS, Limits, UploadError, media_problem, check_upload
from avlab.tasks.lipreading.protocol import BACKEND_FILE, BackEnd

TOP_WORDS = 5
WORD_HEADERS = ["rank", "word", "probability", "true word"]
TEST_SPLIT = "test"
MAX_TEST_CLIPS = 60  # the picker's clips, spread over the words (real LRW's test split has 25,000)
MAX_VIDEO_SECONDS = 10.0  # "a short video": the word is looked for in its middle
MAX_VIDEO_PIXELS = 1920 * 1080  # per frame; 29 frames of it are held in memory at once
STRIP_MIN_SIDE = 64  # each frame of the strip is enlarged (nearest neighbour) to at least this


# --- the word classifier ----------------------------------------------------------------------------
def load_backend(run: str | os.PathLike) -> tuple[BackEnd, list[str]] | None:
    """(the protocol's frozen back-end in eval mode, its words in label order), or None when the
    run was never evaluated. Its sizes come from the tensors, so any back-end the protocol saved loads."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(run) / BACKEND_FILE
    if not path.exists():
        return None
    state = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        words = json.loads(f.metadata()["words"])
    hidden, dim, _ = state["net.0.weight"].shape
    model = BackEnd(dim, len(words), hidden)
    model.load_state_dict(state)
    return model.eval(), words


def evaluated_weights(run: Path) -> str:
    """The weights ``avlab eval`` scored, as ``eval.json`` names them: the back-end was trained on
    their features, so the demo must read with the same ones."""
    from avlab.eval.run_eval import selected_weights

    path = run / "eval.json"
    named = json.loads(path.read_text()).get("weights") if path.exists() else None
    return named or selected_weights(run)


def homophene_groups(data: str | os.PathLike) -> dict[str, list[str]] | None:
    """{word: the other words of its homophene group} from a lip-words set's ``latents/vocabulary.json``
    (words whose viseme sequence is their own map to []); None when the data does not say (real LRW)."""
    path = Path(data) / "latents" / "vocabulary.json"
    if not path.exists():
        return None
    vocab = json.loads(path.read_text())
    groups = {v["word"]: [] for v in vocab["words"]}
    for group in vocab["homophenes"]:
        for word in group:
            groups[word] = [w for w in group if w != word]
    return groups


# --- uploads ----------------------------------------------------------------------------------------
def word_window(n_frames: int, fps: float) -> list[int]:
    """Indices of the frames nearest LRW's 29 frame times (25 fps) centred on the video's middle;
    the first and last frames repeat where the video is shorter.

    >>> word_window(29, 25.0) == list(range(29))
    True
    >>> word_window(116, 100.0)[:3]
    [2, 6, 10]
    """
    middle = n_frames / fps / 2
    times = middle + (np.arange(N_FRAMES) - N_FRAMES // 2) / FPS
    return np.clip(np.floor(times * fps + 1e-6), 0, n_frames - 1).astype(int).tolist()


def read_mouth_video(path: str | os.PathLike, roi_size: int, limits: Limits = Limits()) -> tuple[np.ndarray, list[str]]:
    """((29, roi, roi) uint8 grey mouth ROI, notes on how it was taken) of an uploaded video."""
    path = check_upload(path, VIDEO_EXTS, limits, "video")
    name, notes = path.name, []
    try:
        info = media.probe(path)
        if info.width * info.height > MAX_VIDEO_PIXELS:
            raise UploadError(f"video {name!r} is {info.width}×{info.height}; the limit is 1920×1080 pixels a frame "
                              "(scale it down, or better, crop it to the mouth)")
        fps = info.fps if info.fps > 0 else float(FPS)
        if info.n_frames / fps > MAX_VIDEO_SECONDS:
            raise UploadError(f"video {name!r} is {info.n_frames / fps:.1f} s long; the limit is "
                              f"{MAX_VIDEO_SECONDS:.0f} s (trim it to the word)")
        frames = media.read_frames(path, word_window(info.n_frames, fps), notes=notes)
    except media.MediaError as exc:
        raise media_problem(exc, name, "video") from None
    h, w = frames.shape[1:3]
    if min(h, w) < 8:
        raise UploadError(f"video {name!r} is only {w}×{h} pixels")
    try:
        frames, how = crop_mouth(frames)
    except NoMouthError as exc:
        raise UploadError(f"video {name!r}: {exc}") from None
    how = f"{w}×{h} frames, mouth ROI: {how}"
    seconds, window = info.n_frames / fps, N_FRAMES / FPS
    span = (f"its middle {window:.2f} s (of {seconds:.1f} s)" if seconds > window + 0.5 / fps else
            f"all its {seconds:.2f} s, end frames repeated to LRW's {window:.2f} s" if seconds < window - 0.5 / fps
            else f"all its {seconds:.2f} s")
    rate = "" if abs(fps - FPS) < 1e-3 else f", resampled from {fps:g} to {FPS} fps"
    return mouth_roi(frames, roi_size), [f"video {name!r}: {how}; {span}{rate}", *notes]


def centre_crop(roi: np.ndarray, crop: int) -> torch.Tensor:
    """(1, T, crop, crop) float in [-1, 1]: the evaluation's input of a (T, roi, roi) uint8 clip
    (as :meth:`LipWordsDataset.video` with no randomness)."""
    y = (roi.shape[1] - crop) // 2
    return torch.from_numpy(np.ascontiguousarray(roi[:, y:y + crop, y:y + crop])).float()[None] / 127.5 - 1.0


def roi_strip(clip: torch.Tensor) -> np.ndarray:
    """(H, W) uint8 image of a (1, T, c, c) input clip's frames side by side, each enlarged to at
    least :data:`STRIP_MIN_SIDE` px with a white gap between frames."""
    frames = ((clip[0].numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
    scale = -(-STRIP_MIN_SIDE // frames.shape[1])
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    gap = np.full((frames.shape[1], 2), 255, np.uint8)
    return np.concatenate([x for f in frames for x in (f, gap)][:-1], axis=1)


# --- the reader -------------------------------------------------------------------------------------
@dataclass
class Reading:
    """The words read from one clip, best first."""

    name: str
    clip: torch.Tensor  # (1, T, crop, crop) in [-1, 1]: what the encoder saw
    words: list[str]
    probabilities: np.ndarray  # softmax over every word, in the order of ``words``
    true_word: str | None = None  # known for test clips only
    homophenes: list[str] | None = None  # of the top word; None: not known for this data
    notes: list[str] = field(default_factory=list)
    key: str | None = None  # the test clip's path: same key, same strip file

    @property
    def true_rank(self) -> int | None:
        return self.words.index(self.true_word) + 1 if self.true_word in self.words else None

    def rows(self, k: int = TOP_WORDS) -> list[list]:
        """[rank, word, probability, true word] of the ``k`` likeliest words."""
        return [[r, w, round(float(p), 4), "✓" if w == self.true_word else ""]
                for r, (w, p) in enumerate(zip(self.words[:k], self.probabilities[:k]), 1)]


class LipReader:
    """An evaluated run ready to read words from test clips and uploads (no Gradio here, so tests
    can check its answers against the protocol's own logits)."""

    def __init__(self, run: str | os.PathLike, limits: Limits = Limits(), max_test_clips: int = MAX_TEST_CLIPS,
                 progress: bool = False):
        from avlab.runs import load_run  # weights come from safetensors only

        self.run, self.limits = Path(run), limits
        self.cfg, self.method = load_run(self.run, weights=evaluated_weights(self.run))
        self.task_cfg = self.cfg.task_config()
        loaded = load_backend(self.run)
        self.backend, self.words = loaded if loaded else (None, [])
        self.not_evaluated = "" if loaded else (
            f"This run has no word classifier yet: evaluate it first (`avlab eval --run {self.run.name}`)")
        self.homophenes = homophene_groups(self.cfg.data)
        self.test_clips, self.test_rois, self.missing_test_set = [], {}, ""
        self._load_test_clips(max_test_clips, progress)

    def _load_test_clips(self, max_clips: int, progress: bool) -> None:
        """Up to ``max_clips`` test clips spread over the words, decoded (once, cached) as the evaluation does."""
        root = Path(self.cfg.data)
        if not root.is_dir():
            self.missing_test_set = f"the run's dataset ({root.name}) is not on this machine: uploads only"
            return
        by_word: dict[str, list] = {}
        for c in index_lrw(root):
            if c.split == TEST_SPLIT:
                by_word.setdefault(c.word, []).append(c)
        if not by_word:
            self.missing_test_set = f"the run's dataset has no {TEST_SPLIT} clips: uploads only"
            return
        words = sorted(by_word)
        words = [words[i] for i in np.linspace(0, len(words) - 1, min(len(words), max_clips)).round().astype(int)]
        per_word = max(1, max_clips // len(words))
        picked = sorted((c for w in words for c in by_word[w][:per_word]), key=lambda c: c.path)
        with np.load(build_cache(root, picked, self.task_cfg.roi_size, self.cfg.n_workers, progress)) as data:
            rois = dict(zip(data["paths"].tolist(), data["frames"]))
        self.test_clips = [c for c in picked if c.path in rois]  # undecodable clips are left out
        self.test_rois = {c.path: rois[c.path] for c in self.test_clips}

    def test_clip_choices(self) -> list[tuple[str, str]]:
        """(label, clip path) per test clip: "BAT_00012 · speaker s004"."""
        return [(f"{Path(c.path).stem}" + (f" · speaker {c.speaker}" if c.speaker else ""), c.path)
                for c in self.test_clips]

    def read_test_clip(self, path: str) -> Reading:
        clip = next((c for c in self.test_clips if c.path == path), None)
        if clip is None:
            raise UploadError(f"{path!r} is not one of this demo's test clips")
        return self._read(Path(path).name, self.test_rois[path], clip.word, [], key=path)

    def read_upload(self, path: str | os.PathLike) -> Reading:
        roi, notes = read_mouth_video(path, self.task_cfg.roi_size, self.limits)
        return self._read(Path(path).name, roi, None, notes)

    def read(self, upload=None, test_clip: str | None = None) -> Reading:
        """The words of an upload, else of a test clip."""
        if self.backend is None:
            raise UploadError(self.not_evaluated)
        if upload:
            return self.read_upload(upload)
        if not test_clip:
            raise UploadError("give a clip: pick a test clip or upload a video")
        if not self.test_clips:
            raise UploadError(f"no test clips ({self.missing_test_set}); upload a video")
        return self.read_test_clip(test_clip)

    @torch.no_grad()
    def _read(self, name: str, roi: np.ndarray, true_word: str | None, notes: list[str],
              key: str | None = None) -> Reading:
        clip = centre_crop(roi, self.task_cfg.crop_size)
        encoder = self.method.encoders["video"]
        logits = self.backend(encoder.frames(self.method._input(clip[None])))[0]
        probabilities = logits.softmax(0).numpy()
        order = np.argsort(-probabilities, kind="stable")
        words = [self.words[i] for i in order]
        homophenes = self.homophenes.get(words[0], []) if self.homophenes is not None else None
        return Reading(name, clip, words, probabilities[order], true_word, homophenes, notes, key)


# --- the tab ----------------------------------------------------------------------------------------
AT_CHANCE = ("⚠ **This run is not better than chance** at reading the test words (see the run card): read "
             "these words as a random guess.")


def homophenes_markdown(reading: Reading) -> str:
    top = reading.words[0]
    if reading.homophenes is None:
        return (f"**Homophenes of {top}**: none are known for this data (real LRW comes with no viseme "
                "annotation; a synthetic lip-words set lists them).")
    if not reading.homophenes:
        return f"**Homophenes of {top}**: none — no other word of the vocabulary looks the same on the lips."
    return (f"**Homophenes of {top}**: {', '.join(reading.homophenes)} — the same lip movements, so no lip "
            "reader can tell them apart from video alone.")


def summary_markdown(reading: Reading, at_chance: bool = False) -> str:
    """Warnings first, then the result and the notes."""
    lines = []
    if reading.true_word is not None:
        lines.append(f"**True word {reading.true_word} ranked {reading.true_rank} of {len(reading.words)}.**")
    else:
        lines.append("The true word is unknown for uploads.")
    lines += [f"- {n}" for n in reading.notes]
    return "\n\n".join([*([AT_CHANCE] if at_chance else []), "\n".join(lines)])


class LipReadingTabs:
    """What the generic demo page asks of a task: an ``intro`` line and ``render(files)``."""

    def __init__(self, reader: LipReader):
        from avlab.tasks.run_card import headline

        self.reader = reader
        measured = headline(reader.run)
        self.at_chance = bool(measured and measured["beats_chance"] is False)
        self.intro = ("lip reading: the word a mouth says, read from the video alone (the sound is never used). "
                      "Words come from the frozen visual front-end and the back-end `avlab eval` trained on it; "
                      "test clips are from the test split.")
        if reader.not_evaluated:
            self.intro += f"\n\n**⚠ {reader.not_evaluated}.**"
        if reader.missing_test_set:
            self.intro += f" *{reader.missing_test_set}*"

    def render(self, files) -> None:
        """Create the tab inside the current ``gr.Blocks``."""
        import gradio as gr

        from avlab.tasks.demo_widgets import friendly, upload_paths

        reader = self.reader
        choices = reader.test_clip_choices()

        @friendly
        def read_lips(test_clip, video):
            reading = reader.read(upload_paths(video)[0] if video else None, test_clip)
            strip = files.picture(roi_strip(reading.clip), reading.key, "mouth strip")
            return strip, reading.rows(), homophenes_markdown(reading), summary_markdown(reading, self.at_chance)

        with gr.Tab("Lip reading"):
            with gr.Row():
                with gr.Column(scale=1):
                    clip = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="A test clip")
                    video = gr.File(file_types=list(VIDEO_EXTS),
                                    label="…or your own short video of a mouth saying one word "
                                          f"(at most {MAX_VIDEO_SECONDS:.0f} s; used instead of the test clip)")
                    go = gr.Button("Read the word", variant="primary")
                with gr.Column(scale=2):
                    strip = gr.Image(label="The mouth ROI the model saw, frame by frame", interactive=False)
                    table = gr.Dataframe(headers=WORD_HEADERS, label=f"The {TOP_WORDS} likeliest words",
                                         interactive=False)
                    homophenes = gr.Markdown()
                    notes = gr.Markdown()
            go.click(read_lips, [clip, video], [strip, table, homophenes, notes], api_name="read_lips")


def demo_tabs(run, limits: Limits = Limits(), progress: bool = False, **_ignored) -> LipReadingTabs:
    return LipReadingTabs(LipReader(run, limits=limits, progress=progress))
