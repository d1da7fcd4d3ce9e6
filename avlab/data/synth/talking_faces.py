"""``talking-faces``: a VoxCeleb-like synthetic voice-face benchmark with known latents.

Generative story (DESIGN §4.1):

* each identity has shared latents z = (gender ±1, age, size) and private factors per modality;
* the face shows z directly (jaw, brows, hair, greying, proportions) plus private traits;
* the voice is a 5-vector u (f0, formant scale, rate, tilt, breathiness), standardised, with
  ``u = sqrt(c)·Ã z + sqrt(1−c)·ε`` where ``c`` is ``--coupling`` and each row of Ã has unit
  norm — so every voice dimension has unit variance and c is the share of it that the face
  predicts (c = 0: voice and face independent);
* each clip adds nuisance: pose, light, background, pixel noise, compression, room and noise,
  and a random sentence spoken by espeak-ng with the mouth following the phoneme timings.

Because z and u are known, :mod:`avlab.tasks.voiceface.oracle` scores every evaluation list with the
Bayes-optimal matcher under this model: the ceiling for learned models.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avlab.data.media import write_mp4
from avlab.parallel import pool
from avlab.data.synth.face import FaceParams, Scene, add_noise, draw_face
from avlab.data.synth.voice import SAMPLE_RATE, VoiceParams, revoice, room

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
VOICE_DIMS = ("f0", "formant_scale", "rate", "tilt", "breathiness")
# How the shared latents (gender, age, size) drive each standardised voice dimension before
# row normalisation: lower pitch and longer tract for "male" and larger identities, slower and
# darker, breathier speech with age. Signs are what matter; rows are normalised to unit norm.
VOICE_LOADINGS = np.array([
    [-0.90, 0.15, -0.25],  # f0
    [-0.55, 0.00, -0.60],  # formant scale
    [0.00, -0.60, 0.10],  # rate
    [0.10, -0.50, 0.00],  # tilt
    [-0.35, 0.45, 0.00],  # breathiness
])
VOICE_LOADINGS = VOICE_LOADINGS / np.linalg.norm(VOICE_LOADINGS, axis=1, keepdims=True)

PROFILES = {
    # quick: many identities with a few clips each from two videos — what lets a model learn within the
    # main job's minutes (README, "The main job"); 96 identities × 8 clips memorised instead of learning
    "quick": dict(identities=256, videos_per_id=2, utts_per_video=3, size=64),
    "standard": dict(identities=400, videos_per_id=3, utts_per_video=4, size=64),
}


@dataclass(frozen=True)
class TalkingFacesConfig:
    identities: int = 96
    videos_per_id: int = 2
    utts_per_video: int = 4
    coupling: float = 0.8
    size: int = 64
    seed: int = 0
    test_fraction: float = 0.25  # identities held out as unseen-unheard
    val_fraction: float = 0.1
    list_pairs: int = 2000  # at most this many rows per list

    def __post_init__(self):
        if self.identities < 8:
            raise ValueError(f"identities must be >= 8 (got {self.identities}): splits need several per side")
        if not 0.0 <= self.coupling <= 1.0:
            raise ValueError(f"coupling must lie in [0, 1], got {self.coupling}")
        if self.size < 32 or self.size % 2:
            raise ValueError(f"size must be an even number of pixels >= 32, got {self.size}")
        if self.videos_per_id < 1 or self.utts_per_video < 1:
            raise ValueError("videos_per_id and utts_per_video must be >= 1")

    @staticmethod
    def from_profile(profile: str = "quick", **overrides) -> "TalkingFacesConfig":
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
        known = set(TalkingFacesConfig.__dataclass_fields__)
        unknown = sorted(k for k, v in overrides.items() if v is not None and k not in known)
        if unknown:
            raise ValueError(f"the talking-faces benchmark has no option(s) {unknown}; it has {sorted(known)}")
        values = {**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}}
        return TalkingFacesConfig(**values)


@dataclass(frozen=True)
class Identity:
    name: str  # VoxCeleb-style identity, e.g. id00001
    split: str  # train | val | test
    gender: int
    age: float
    size: float
    voice_u: tuple[float, ...]  # standardised voice vector (VOICE_DIMS)
    face: FaceParams = field(repr=False)
    voice: VoiceParams = field(repr=False)

    @property
    def z(self) -> np.ndarray:
        """Standardised shared latents (gender ±1, age, size)."""
        return np.array([2.0 * self.gender - 1.0, (self.age - 0.5) / np.sqrt(1 / 12), self.size])


def voice_from_u(u: np.ndarray) -> VoiceParams:
    """Map a standardised voice vector to physical parameters."""
    return VoiceParams(
        f0_hz=float(155.0 * 2 ** (0.55 * u[0])),
        formant_scale=float(np.clip(1.0 + 0.085 * u[1], 0.78, 1.25)),
        rate_wpm=int(np.clip(170 + 22 * u[2], 110, 240)),
        tilt_db_per_octave=float(np.clip(1.5 * u[3], -4.5, 4.5)),
        breathiness=float(np.clip(0.25 + 0.15 * u[4], 0.0, 0.7)),
    )


def sample_identities(cfg: TalkingFacesConfig) -> list[Identity]:
    rng = np.random.default_rng([cfg.seed, 1])
    n = cfg.identities
    n_test = max(2, int(round(n * cfg.test_fraction)))
    n_val = max(1, int(round(n * cfg.val_fraction)))
    splits = ["train"] * (n - n_test - n_val) + ["val"] * n_val + ["test"] * n_test
    splits = list(rng.permutation(splits))
    out = []
    for i in range(n):
        gender, age, size = int(rng.random() < 0.5), float(rng.uniform()), float(rng.normal())
        z = np.array([2.0 * gender - 1.0, (age - 0.5) / np.sqrt(1 / 12), size])
        u = np.sqrt(cfg.coupling) * VOICE_LOADINGS @ z + np.sqrt(1 - cfg.coupling) * rng.normal(size=5)
        out.append(Identity(
            name=f"id{i + 1:05d}", split=str(splits[i]), gender=gender, age=age, size=size,
            voice_u=tuple(float(v) for v in u), face=FaceParams.sample(gender, age, size, rng),
            voice=voice_from_u(u),
        ))
    return out


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def video_ids(cfg: TalkingFacesConfig, identity_index: int) -> list[str]:
    """YouTube-like 11-character video ids, deterministic per identity."""
    rng = np.random.default_rng([cfg.seed, 2, identity_index])
    return ["".join(rng.choice(list(_ALPHABET), 11)) for _ in range(cfg.videos_per_id)]


# --- sentences -------------------------------------------------------------------------------
_SUBJECTS = ["the doctor", "my brother", "a tall man", "the old lady", "our teacher", "the pilot",
             "a small child", "her friend", "the driver", "my neighbour", "the singer", "his mother"]
_VERBS = ["bought", "painted", "found", "carried", "forgot", "cleaned", "opened", "watched",
          "described", "remembered", "borrowed", "delivered"]
_OBJECTS = ["a yellow boat", "the wooden table", "seven apples", "the blue window", "a paper map",
            "the heavy box", "two red chairs", "a silver ring", "the garden gate", "an old piano",
            "the morning paper", "a bright lamp"]
_TAILS = ["yesterday", "last summer", "before lunch", "in the rain", "very slowly", "at the market",
          "near the station", "after the meeting", "with great care", "on sunday"]


def sentence(rng: np.random.Generator) -> str:
    parts = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)]
    if rng.random() < 0.7:
        parts.append(rng.choice(_TAILS))
    return " ".join(str(p) for p in parts)


# --- lip-sync --------------------------------------------------------------------------------
# Mouth opening by the first letter of an espeak phoneme mnemonic: closed for bilabials, nearly
# closed for labiodentals, open vowels widest, rounded and close vowels narrower.
_OPENNESS = [("pbm", 0.0), ("fv", 0.12), ("aA", 1.0), ("oO0", 0.75), ("eE3V@", 0.6), ("iI", 0.4), ("uUw", 0.3)]
_OTHER_CONSONANT = 0.22


def viseme_openness(phoneme: str) -> float:
    """How open the mouth is for an espeak phoneme mnemonic (stress marks ignored)."""
    p = phoneme.lstrip("',").strip()
    if not p or p.startswith("_"):  # pause
        return 0.0
    return next((value for letters, value in _OPENNESS if p[0] in letters), _OTHER_CONSONANT)


def mouth_track(phonemes: list[tuple[float, str]], n_frames: int, offset_s: float) -> np.ndarray:
    """Per-frame mouth opening from phoneme onsets, smoothed for coarticulation."""
    t = np.arange(n_frames * 4) / (FPS * 4)  # 100 Hz grid
    target = np.zeros_like(t)
    for k, (start, ph) in enumerate(phonemes):
        end = phonemes[k + 1][0] if k + 1 < len(phonemes) else start + 0.08
        target[(t >= start + offset_s) & (t < end + offset_s)] = viseme_openness(ph)
    kernel = np.exp(-0.5 * (np.arange(-8, 9) / 3.0) ** 2)  # σ = 30 ms
    smooth = np.convolve(target, kernel / kernel.sum(), mode="same")
    return smooth[2::4].astype(np.float32)  # sample at frame centres


# --- one clip --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipJob:
    identity: Identity
    identity_index: int
    video: str
    video_index: int
    utt_index: int
    relpath: str
    clip_split: str
    seed: int
    size: int


def _clip_rng(job: ClipJob, stream: int) -> np.random.Generator:
    return np.random.default_rng([job.seed, 3, job.identity_index, job.video_index, job.utt_index, stream])


def render_clip(job: ClipJob, out_root: str) -> dict:
    """Synthesise, render and write one clip (skips the writing if it exists); returns its row."""
    from avlab.data.synth.espeak import Espeak

    rng = _clip_rng(job, 0)
    video_rng = np.random.default_rng([job.seed, 4, job.identity_index, job.video_index])
    scene = Scene.sample(video_rng)  # a video keeps its look; utterances jitter the pose a little
    snr_db, rt60, crf = video_rng.uniform(12, 30), video_rng.uniform(0.05, 0.35), int(video_rng.integers(20, 30))
    scene = replace(scene, angle_deg=scene.angle_deg + rng.uniform(-2, 2), scale=scene.scale * rng.uniform(0.97, 1.03))

    text = sentence(rng)
    voice = replace(job.identity.voice, f0_hz=job.identity.voice.f0_hz * rng.uniform(0.96, 1.04))
    utt = Espeak().synth(text, rate_wpm=voice.rate_wpm)
    speech = room(revoice(utt.audio, utt.sample_rate, utt.words, voice, rng), snr_db, rt60, rng)
    lead = 0.2 + rng.uniform(0, 0.1)
    n_frames = int(np.ceil((len(speech) / SAMPLE_RATE + lead + 0.2) * FPS))
    audio = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
    start = int(lead * SAMPLE_RATE)
    audio[start:start + len(speech)] = speech
    audio += rng.normal(0, 10 ** (-snr_db / 20) * 0.02, len(audio)).astype(np.float32)
    mouth = mouth_track(utt.phonemes, n_frames, start / SAMPLE_RATE)

    path = Path(out_root) / job.relpath
    if not path.exists():
        frames = np.empty((n_frames, job.size, job.size, 3), np.uint8)
        blink_at = set(rng.choice(n_frames, size=max(1, n_frames // 60), replace=False).tolist())
        phase = rng.uniform(0, 2 * np.pi)
        for f in range(n_frames):
            sway = (0.006 * np.sin(phase + f / 9.0), 0.004 * np.sin(phase + f / 13.0))
            bgr = draw_face(job.identity.face, scene, job.size, float(mouth[f]),
                            blink=1.0 if f in blink_at else 0.0, sway=sway)
            frames[f] = add_noise(bgr, scene.noise_std, rng)[..., ::-1]
        write_mp4(path, frames, audio, fps=FPS, sample_rate=SAMPLE_RATE, crf=crf)
    ident = job.identity
    row = {
        "path": job.relpath, "identity": ident.name, "video": job.video, "utt": f"{job.utt_index + 1:05d}",
        "id_split": ident.split, "clip_split": job.clip_split, "gender": "m" if ident.gender else "f",
        "age": round(ident.age, 4), "size": round(ident.size, 4), "n_frames": n_frames,
        "duration": round(n_frames / FPS, 3), "text": text,
    }
    return {"row": row, "mouth": mouth}


def _render(args):
    return render_clip(*args)


def clip_jobs(cfg: TalkingFacesConfig, identities: list[Identity]) -> list[ClipJob]:
    jobs = []
    for i, ident in enumerate(identities):
        top = "test" if ident.split == "test" else "dev"
        for v, vid in enumerate(video_ids(cfg, i)):
            for u in range(cfg.utts_per_video):
                if ident.split == "test":
                    clip_split = "unseen_unheard"
                elif ident.split == "val":
                    clip_split = "val"
                else:
                    # The last utterance of every video of a training identity is held out for
                    # the seen-heard test (a whole video when there is only one utterance each).
                    held = u == cfg.utts_per_video - 1 if cfg.utts_per_video > 1 else v == cfg.videos_per_id - 1
                    clip_split = "seen_heard" if held and cfg.videos_per_id * cfg.utts_per_video > 1 else "train"
                jobs.append(ClipJob(ident, i, vid, v, u, f"{top}/mp4/{ident.name}/{vid}/{u + 1:05d}.mp4",
                                    clip_split, cfg.seed, cfg.size))
    return jobs


def generate(cfg: TalkingFacesConfig, out: str | os.PathLike, workers: int = 2, progress: bool = True) -> Path:
    """Write the whole benchmark under ``out``; re-running resumes (finished clips are kept)."""
    from avlab.data.synth import lists as list_writer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "synth_config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != {"benchmark": "talking-faces", **asdict(cfg)}:
            raise ValueError(f"{out} holds a talking-faces set made with another config ({cfg_path}); "
                             "use a new --out or delete it")
    cfg_path.write_text(json.dumps({"benchmark": "talking-faces", **asdict(cfg)}, indent=1))
    identities = sample_identities(cfg)
    jobs = clip_jobs(cfg, identities)
    args = [(job, str(out)) for job in jobs]
    results = []
    bar = tqdm(total=len(jobs), desc="talking-faces clips", unit="clip", disable=not progress)
    if workers > 1:
        with pool(workers) as workers_pool:  # each worker starts its own espeak engine
            for r in workers_pool.imap(_render, args, chunksize=4):
                results.append(r)
                bar.update()
    else:
        for a in args:
            results.append(_render(a))
            bar.update()
    bar.close()

    rows = [r["row"] for r in results]
    _write_csv(out / "meta.csv", rows)
    _write_csv(out / "vox2_meta.csv", [
        {"VoxCeleb2 ID": i.name, "VGGFace2 ID": f"synth_{i.name}", "Gender": "m" if i.gender else "f",
         "Set": "test" if i.split == "test" else "dev"} for i in identities])
    latents = out / "latents"
    latents.mkdir(exist_ok=True)
    (latents / "identities.json").write_text(json.dumps({
        "voice_dims": list(VOICE_DIMS), "voice_loadings": VOICE_LOADINGS.round(6).tolist(),
        "coupling": cfg.coupling,
        "identities": [{"name": i.name, "split": i.split, "gender": i.gender, "age": i.age, "size": i.size,
                        "z": i.z.round(6).tolist(), "voice_u": list(i.voice_u), "voice": asdict(i.voice),
                        "face": asdict(i.face)} for i in identities]}, indent=1))
    np.savez_compressed(latents / "mouth.npz", **{r["row"]["path"]: r["mouth"] for r in results})
    list_writer.write_all(out, rows, identities, cfg)
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
