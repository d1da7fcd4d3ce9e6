"""``lip-words``: an LRW-like synthetic lip-reading benchmark with known articulation.

Generative story (DESIGN §4.1):

* a vocabulary of English words (the profile's first ``words`` of :data:`VOCABULARY`, ordered so
  that every prefix holds homophene groups: PAT/BAT/MAT, FAN/VAN, BILL/PILL/MILL …);
* speakers, each with a mouth appearance (:class:`~avlab.data.synth.mouth.MouthParams`) and a
  voice drawn from the talking-faces voice model (standardised 5-vector → physical voice);
* each clip: the word spoken by espeak-ng inside a short carrier phrase ("so BAT again"), re-voiced
  as the speaker (:func:`avlab.data.synth.voice.revoice`) in a random room; 29 frames at 25 fps
  (1.16 s) centred on the word, as LRW; the mouth follows espeak's phoneme timings through the
  viseme map with coarticulation (:mod:`avlab.data.synth.visemes`); head sway, light and noise
  per clip. Homophenes exist by construction: their viseme sequences coincide, so the visual
  ceiling is below 100 % while audio tells every word apart.

Layout, exactly LRW's: ``lipread_mp4/WORD/{train,val,test}/WORD_00001.mp4`` with a ``.txt``
beside each (``Text:``, ``Conf:``, ``Duration:`` of the word), plus ``meta.csv`` (speaker, word
timing, phonemes, visemes per clip), ``latents/`` (vocabulary with homophene groups, speakers,
the mouth shape track of every clip) and ``synth_config.json``. What is encoded is the grey mouth
ROI (``roi`` px, 32 by default) as H.264, R = G = B, with 16 kHz AAC audio.

Speakers are shared across splits by default (LRW's convention); ``speaker_split="disjoint"``
gives each split its own speakers. Deterministic given the seed, parallel across processes,
resumable (finished clips are not re-encoded). This module never imports the protocol: the
oracle is computed by the lip-reading task from ``meta.csv`` and ``latents/``.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avlab.data.media import write_mp4
from avlab.data.synth.mouth import MouthParams, Pose, render_roi
from avlab.data.synth.talking_faces import voice_from_u
from avlab.data.synth.visemes import SHAPE_DIMS, clean, is_pause, mouth_shapes, viseme_sequence
from avlab.data.synth.voice import SAMPLE_RATE, VoiceParams, revoice, room
from avlab.parallel import imap_watched

FPS = 25
N_FRAMES = 29  # LRW: 1.16 s clips
CLIP_SAMPLES = N_FRAMES * SAMPLE_RATE // FPS
SPLITS = ("train", "val", "test")

# Homophene groups first, then words with their own viseme sequence. The first six make the
# ``tiny`` set (two groups + two singletons); the first 30 the ``quick`` one.
VOCABULARY = (
    "PAT", "BAT", "FAN", "VAN", "ABOUT", "SCHOOL",
    "MAT", "BILL", "PILL", "MILL", "TIME", "DIME", "SUE", "ZOO", "COAT", "GOAT", "BUY", "PIE", "MY",
    "CHAIR", "SHARE", "WHITE", "WIDE", "WATER", "PEOPLE", "HOUSE", "THINK", "WORLD", "FAMILY", "QUESTION",
    "TWO", "DO", "NEW", "CAP", "GAP", "FINE", "VINE", "COULD", "GOOD", "TEN", "DEN", "BACK", "PACK", "MEET",
    "BEAT", "FEW", "VIEW", "SEAL", "ZEAL", "CAME", "GAME", "RIGHT", "LIGHT", "GREAT", "LITTLE", "NUMBER",
    "ANSWER", "MONEY", "YEAR", "WHERE", "WHILE", "AGAINST", "ALLOWED", "BECAUSE", "BEFORE", "BETWEEN",
    "BUSINESS", "CHANGE", "CHILDREN", "COUNTRY", "DIFFERENT", "EVERY", "FIRST", "FUTURE", "GOVERNMENT",
    "HAPPEN", "HEALTH", "IMPORTANT", "LEADERS", "MAJORITY", "MIDDLE", "MORNING", "NOTHING", "PLACE",
    "POLICE", "POWER", "PROBLEM", "SERIOUS", "SOCIAL", "SPEND", "STILL", "SYSTEM", "THOUGHT", "TODAY",
    "UNDER", "WEEKEND", "WOMEN", "YOUNG", "ACTION", "LATER",
)
_LEFT = ("so", "and", "we said", "then", "I say", "you know", "well", "now", "they saw", "the")
_RIGHT = ("again", "today", "here", "for us", "is it", "and then", "right now", "again please", "too", "once")

PROFILES = {
    "tiny": dict(words=6, speakers=8, train_per_word=8, val_per_word=2, test_per_word=3),
    "quick": dict(words=30, speakers=60, train_per_word=40, val_per_word=5, test_per_word=10),
    "standard": dict(words=100, speakers=300, train_per_word=80, val_per_word=10, test_per_word=10),
}


@dataclass(frozen=True)
class LipWordsConfig:
    words: int = 30
    speakers: int = 60
    train_per_word: int = 40
    val_per_word: int = 5
    test_per_word: int = 10
    roi: int = 32  # side of the encoded grey mouth ROI (LRW: 96)
    speaker_split: str = "shared"  # shared (LRW) | disjoint (each split its own speakers)
    snr_db: tuple[float, float] = (10.0, 30.0)  # room noise range per clip
    crf: int = 23
    seed: int = 0
    vocabulary: tuple[str, ...] = ()  # explicit words (default: the first ``words`` of VOCABULARY)

    def __post_init__(self):
        if not 2 <= self.n_words <= len(self.vocab_words) or any(not w.isalpha() for w in self.vocab_words):
            raise ValueError(f"words must lie in [2, {len(VOCABULARY)}] and be alphabetic, got {self.words}")
        if self.speaker_split not in ("shared", "disjoint"):
            raise ValueError(f"speaker_split must be 'shared' or 'disjoint', got {self.speaker_split!r}")
        if self.speakers < (3 if self.speaker_split == "disjoint" else 1):
            raise ValueError(f"speakers must be >= 3 for disjoint splits (got {self.speakers})")
        if self.roi < 16 or self.roi % 2:
            raise ValueError(f"roi must be an even number of pixels >= 16, got {self.roi}")
        if min(self.train_per_word, self.val_per_word, self.test_per_word) < 1:
            raise ValueError("train_per_word, val_per_word and test_per_word must be >= 1")

    @property
    def vocab_words(self) -> tuple[str, ...]:
        return tuple(w.upper() for w in self.vocabulary) or VOCABULARY

    @property
    def n_words(self) -> int:
        return len(self.vocabulary) or self.words

    @property
    def word_list(self) -> tuple[str, ...]:
        return self.vocab_words[: self.n_words]

    def per_split(self, split: str) -> int:
        return {"train": self.train_per_word, "val": self.val_per_word, "test": self.test_per_word}[split]

    @staticmethod
    def from_profile(profile: str = "quick", **overrides) -> "LipWordsConfig":
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
        known = set(LipWordsConfig.__dataclass_fields__)
        unknown = sorted(k for k, v in overrides.items() if v is not None and k not in known)
        if unknown:
            raise ValueError(f"the lip-words benchmark has no option(s) {unknown}; it has {sorted(known)}")
        values = {**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}}
        return LipWordsConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class Speaker:
    name: str  # spk0001
    split: str  # the split it speaks in ("all" when shared)
    mouth: MouthParams
    voice_u: tuple[float, ...]
    voice: VoiceParams


def sample_speakers(cfg: LipWordsConfig) -> list[Speaker]:
    rng = np.random.default_rng([cfg.seed, 1])
    n = cfg.speakers
    if cfg.speaker_split == "shared":
        splits = ["all"] * n
    else:  # 70 / 10 / 20 %, at least one each
        n_val, n_test = max(1, round(0.1 * n)), max(1, round(0.2 * n))
        splits = list(rng.permutation(["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test))
    out = []
    for i in range(n):
        u = rng.normal(size=5)
        out.append(Speaker(f"spk{i + 1:04d}", str(splits[i]), MouthParams.sample(rng), tuple(float(v) for v in u),
                           voice_from_u(u)))
    return out


@dataclass(frozen=True)
class ClipJob:
    word: str
    word_index: int
    split: str
    number: int  # 1-based, per (word, split), as in LRW file names
    speaker: Speaker
    speaker_index: int
    cfg: LipWordsConfig
    out_root: str

    @property
    def relpath(self) -> str:
        return f"lipread_mp4/{self.word}/{self.split}/{self.word}_{self.number:05d}.mp4"

    def rng(self, stream: int) -> np.random.Generator:
        """Independent streams (text/timing, audio, video): a resumed clip skips the media streams
        without shifting the others."""
        return np.random.default_rng([self.cfg.seed, 3, self.word_index, SPLITS.index(self.split), self.number,
                                      stream])


def clip_jobs(cfg: LipWordsConfig, speakers: list[Speaker], out_root: str) -> list[ClipJob]:
    jobs = []
    for w, word in enumerate(cfg.word_list):
        for split in SPLITS:
            pool = [i for i, s in enumerate(speakers) if s.split in ("all", split)]
            rng = np.random.default_rng([cfg.seed, 2, w, SPLITS.index(split)])
            for k in range(cfg.per_split(split)):
                i = int(pool[rng.integers(len(pool))])
                jobs.append(ClipJob(word, w, split, k + 1, speakers[i], i, cfg, out_root))
    return jobs


def segments(phonemes: list[tuple[float, str]], end_s: float) -> list[tuple[float, float, str]]:
    """espeak's (onset, phoneme) events as (start, end, phoneme): each ends where the next begins."""
    ends = [t for t, _ in phonemes[1:]] + [end_s]
    return [(t, max(e, t), p) for (t, p), e in zip(phonemes, ends)]


def word_span(segs: list[tuple[float, float, str]], word_starts: list[float], k: int,
              canonical: tuple[str, ...] = ()) -> tuple[float, float, list[str]]:
    """(start, end, phonemes) of the ``k``-th spoken word.

    espeak's word events do not fall exactly on phoneme boundaries (a final consonant may be
    linked to the next word, "fan again" → "fa nagain"), so the word is the run of phonemes equal
    to its ``canonical`` pronunciation nearest its word event; failing that (a vowel reduced in
    context), its non-pause phonemes from its word event up to the next word's."""
    start = word_starts[k]
    spoken = [s for s in segs if not is_pause(s[2])]
    names = [clean(s[2]) for s in spoken]
    n = len(canonical)
    runs = [j for j in range(len(names) - n + 1) if n and tuple(names[j:j + n]) == canonical]
    if runs:
        j = min(runs, key=lambda j: abs(spoken[j][0] - start))
        if abs(spoken[j][0] - start) < 0.3:
            return spoken[j][0], spoken[j + n - 1][1], list(canonical)
    stop = word_starts[k + 1] if k + 1 < len(word_starts) else float("inf")
    mine = [s for s in spoken if start - 1e-6 <= s[0] < stop - 1e-6]
    if not mine:
        raise RuntimeError(f"espeak gave no phonemes for word {k} (word events {word_starts})")
    return mine[0][0], mine[-1][1], [clean(s[2]) for s in mine]


@lru_cache(maxsize=None)
def canonical_phonemes(word: str) -> tuple[str, ...]:
    """The word's phonemes spoken alone (what ``vocabulary.json`` records)."""
    from avlab.data.synth.espeak import Espeak

    utt = Espeak().synth(word.lower())
    return tuple(clean(p) for _, p in utt.phonemes if not is_pause(p))


def _place(speech: np.ndarray, start_s: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """The 1.16-s window of ``speech`` that starts at ``start_s``, with background noise where the
    utterance does not reach (so silence is never digital zero)."""
    out = np.zeros(CLIP_SAMPLES, np.float32)
    s0 = int(round(start_s * SAMPLE_RATE))
    lo, hi = max(0, s0), min(len(speech), s0 + CLIP_SAMPLES)
    if hi > lo:
        out[lo - s0:hi - s0] = speech[lo:hi]
    level = np.sqrt(np.mean(speech**2) + 1e-12) * 10 ** (-snr_db / 20)
    return out + rng.normal(0, level, CLIP_SAMPLES).astype(np.float32)


def render_clip(job: ClipJob) -> dict:
    """Speak, time, render and write one clip (the media only if missing); returns its meta row
    and its mouth-shape track."""
    from avlab.data.synth.espeak import Espeak

    cfg, spk = job.cfg, job.speaker
    text_rng = job.rng(0)
    left, right = str(text_rng.choice(_LEFT)), str(text_rng.choice(_RIGHT))
    text = f"{left} {job.word.lower()} {right}"
    rate = int(np.clip(spk.voice.rate_wpm * text_rng.uniform(0.92, 1.08), 100, 260))
    utt = Espeak().synth(text, rate_wpm=rate)
    utt_end = len(utt.audio) / utt.sample_rate
    segs = segments(utt.phonemes, utt_end)
    k = len(left.split())
    canonical = canonical_phonemes(job.word)
    w_start, w_end, phonemes = word_span(segs, utt.words, k, canonical)
    clip_start = (w_start + w_end) / 2 + text_rng.uniform(-0.02, 0.02) - N_FRAMES / FPS / 2
    frame_times = clip_start + (np.arange(N_FRAMES) + 0.5) / FPS
    shapes = mouth_shapes(segs, frame_times)

    path = Path(job.out_root) / job.relpath
    if not path.exists():
        audio_rng, video_rng = job.rng(1), job.rng(2)
        voice = replace(spk.voice, f0_hz=spk.voice.f0_hz * audio_rng.uniform(0.96, 1.04))
        snr = float(audio_rng.uniform(*cfg.snr_db))
        speech = room(revoice(utt.audio, utt.sample_rate, utt.words, voice, audio_rng), snr,
                      float(audio_rng.uniform(0.05, 0.3)), audio_rng)
        audio = _place(speech, clip_start, snr, audio_rng)
        grey = render_roi(spk.mouth, shapes, Pose.sample(video_rng), cfg.roi, video_rng)
        write_mp4(path, np.repeat(grey[..., None], 3, axis=-1), audio, fps=FPS, sample_rate=SAMPLE_RATE, crf=cfg.crf)
    duration = w_end - w_start
    path.with_suffix(".txt").write_text(f"Text:  {job.word}\nConf:  1\n\nDuration: {duration:.2f} seconds\n")
    row = {"path": job.relpath, "word": job.word, "split": job.split, "speaker": spk.name,
           "word_start": round(w_start - clip_start, 4), "word_end": round(w_end - clip_start, 4),
           "duration": round(duration, 4), "text": text, "phonemes": " ".join(phonemes),
           "visemes": "-".join(viseme_sequence(phonemes))}
    return {"row": row, "shapes": shapes}


def generate(cfg: LipWordsConfig, out: str | os.PathLike, workers: int = 2, progress: bool = True) -> Path:
    """Write the whole benchmark under ``out``; re-running resumes (finished clips are kept)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = {"benchmark": "lip-words", **asdict(cfg)}
    stamp = json.loads(json.dumps(stamp))  # tuples as lists, as read back
    cfg_path = out / "synth_config.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != stamp:
        raise ValueError(f"{out} holds a lip-words set made with another config ({cfg_path}); "
                         "use a new --out or delete it")
    cfg_path.write_text(json.dumps(stamp, indent=1))
    speakers = sample_speakers(cfg)
    jobs = clip_jobs(cfg, speakers, str(out))
    results = list(tqdm(imap_watched(render_clip, jobs, workers, name=lambda j: j.relpath, chunksize=8),
                        total=len(jobs), desc="lip-words clips", unit="clip", disable=not progress))
    _write_csv(out / "meta.csv", [r["row"] for r in results])
    write_latents(out / "latents", cfg, speakers, results)
    return out


def write_latents(folder: Path, cfg: LipWordsConfig, speakers: list[Speaker], results: list[dict]) -> None:
    folder.mkdir(exist_ok=True)
    vocab = [{"word": w, "phonemes": list(canonical_phonemes(w))} for w in cfg.word_list]
    for v in vocab:
        v["visemes"] = list(viseme_sequence(v["phonemes"]))
    groups: dict[tuple, list[str]] = {}
    for v in vocab:
        groups.setdefault(tuple(v["visemes"]), []).append(v["word"])
    (folder / "vocabulary.json").write_text(json.dumps({
        "words": vocab, "homophenes": [g for g in groups.values() if len(g) > 1],
        "n_viseme_classes": len(groups)}, indent=1))
    (folder / "speakers.json").write_text(json.dumps([
        {"name": s.name, "split": s.split, "mouth": asdict(s.mouth), "voice_u": list(s.voice_u),
         "voice": asdict(s.voice)} for s in speakers], indent=1))
    np.savez_compressed(folder / "mouth.npz", shape_dims=np.array(SHAPE_DIMS),
                        **{r["row"]["path"]: r["shapes"] for r in results})


def _write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
