"""``sounding-objects``: a VGGSound / VGG-SS-like sound-source localisation benchmark with known latents.

Generative story (DESIGN §4.1):

* each **object class** has a look (shape, colour, texture) and a characteristic sound: energy in
  one or two known frequency bands (tonal partials or band-passed noise) under its own temporal
  pattern (pulse train, amplitude modulation or bursts) — the class's envelope;
* each **clip** shows one sounding object whose motion (a scale pulse or a bounce) follows the
  sound's envelope, and 1..``max_distractors`` silent distractors (quick 1, standard 3) of other
  classes that move on envelopes of their own; a varied background, camera jitter, pixel noise
  and room noise. In a share of clips the sound comes from off screen: the sounding object is not
  drawn (no box), as in real data;
* ground truth: the sounding object's box in every frame, its class and the clip's bands (Hz).

Layout (VGGSound's, plus VGG-SS-style boxes)::

    video/<video_id>_<start:06d>.mp4   H.264 + AAC clips
    vggsound.csv                       video_id,start_seconds,label,split (no header, as VGGSound's)
    vggss.json                         [{"file", "class", "bbox": [[x1, y1, x2, y2]] (normalised)}]
                                       for test clips with an on-screen source (the middle frame)
    meta.csv                           one row per clip: file, label, class index, split, on screen …
    latents/classes.json               every class's look and sound (bands in Hz, pattern, rate)
    latents/boxes.npz                  per clip: (frames, 4) pixel boxes of the sounding object

The scene latents (:func:`sample_scene`) are drawn before and apart from rendering, so the
oracle can simulate the generator's prior without writing media. Nothing here imports a protocol.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avlab.data.media import write_mp4
from avlab.data.vggsound import key_frame
from avlab.parallel import imap_watched

SHAPES = ("circle", "square", "triangle", "diamond", "hexagon", "cross", "star", "ring")
TEXTURES = ("solid", "stripes", "checks", "dots")
PATTERNS = ("pulses", "am", "bursts")
MOTIONS = ("pulse", "bounce")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

PROFILES = {
    # quick: 160 clips a class — with 32, two encoders learning from scratch memorised the 240
    # training pairs instead of learning classes (probes at chance, no localisation; README audit).
    # 48² frames with one silent distractor: the main job's CMAC run leaves the
    # contrast's chance level within its few minutes (with up to 3 distractors at 64² it needed
    # twice the steps); standard keeps the full scene.
    "quick": dict(classes=10, clips_per_class=160, size=48, max_distractors=1),
    "standard": dict(classes=30, clips_per_class=60),
}


@dataclass(frozen=True)
class SoundingObjectsConfig:
    classes: int = 10
    clips_per_class: int = 24
    size: int = 64  # frame side in pixels
    seconds: float = 1.0
    fps: int = 25
    sample_rate: int = 16_000
    offscreen_fraction: float = 0.1  # clips whose sound comes from off screen (no box)
    max_distractors: int = 3  # silent objects per clip: 1..max_distractors
    test_fraction: float = 0.25  # clips per class held out for the protocol
    snr_db: tuple[float, float] = (10.0, 25.0)  # room noise under the source
    seed: int = 0

    def __post_init__(self):
        if not 2 <= self.classes <= len(SHAPES) * len(TEXTURES) * 8:
            raise ValueError(f"classes must lie in [2, {len(SHAPES) * len(TEXTURES) * 8}], got {self.classes}")
        if self.max_distractors < 1:
            raise ValueError(f"max_distractors must be >= 1 (a clip shows 1..max_distractors silent objects), "
                             f"got {self.max_distractors}")
        if self.classes <= self.max_distractors:
            raise ValueError(f"classes ({self.classes}) must exceed max_distractors ({self.max_distractors}): "
                             "distractors are of other classes than the source")
        if self.clips_per_class < 2:
            raise ValueError(f"clips_per_class must be >= 2 (train and test), got {self.clips_per_class}")
        if self.size < 32 or self.size % 16:
            raise ValueError(f"size must be a multiple of 16 pixels >= 32, got {self.size}")
        if not 0.0 <= self.offscreen_fraction < 1.0:
            raise ValueError(f"offscreen_fraction must lie in [0, 1), got {self.offscreen_fraction}")

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    @staticmethod
    def from_profile(profile: str = "quick", **overrides) -> "SoundingObjectsConfig":
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
        known = set(SoundingObjectsConfig.__dataclass_fields__)
        unknown = sorted(k for k, v in overrides.items() if v is not None and k not in known)
        if unknown:
            raise ValueError(f"the sounding-objects benchmark has no option(s) {unknown}; it has {sorted(known)}")
        values = {**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}}
        if "snr_db" in values:
            values["snr_db"] = tuple(values["snr_db"])
        return SoundingObjectsConfig(**values)


# --- classes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectClass:
    name: str
    shape: str
    texture: str
    colour: tuple[int, int, int]  # RGB
    bands: tuple[tuple[float, float], ...]  # (lo, hi) Hz
    tonal: bool  # partials inside the bands (True) or band-passed noise
    pattern: str  # pulses | am | bursts
    rate_hz: float  # events (or modulation cycles) per second


def _colour(hue: float, rng: np.random.Generator) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.65, 0.95), rng.uniform(0.75, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _bands(k: int, n: int, rng: np.random.Generator) -> tuple[tuple[float, float], ...]:
    """One or two bands; the first band's centre is spread over 250 Hz–5 kHz by class so that
    classes differ in frequency as well as in pattern."""
    lo_oct, hi_oct = np.log2(250.0), np.log2(5000.0)
    centres = [lo_oct + (hi_oct - lo_oct) * (k + rng.uniform(0.2, 0.8)) / n]
    if rng.random() < 0.5:
        centres.append(float(np.clip(centres[0] + rng.choice([-1, 1]) * rng.uniform(1.2, 2.2), lo_oct, hi_oct)))
    out = []
    for c in centres:
        half = rng.uniform(0.12, 0.25)  # half-width in octaves
        out.append((float(round(2 ** (c - half), 1)), float(round(2 ** (c + half), 1))))
    return tuple(sorted(out))


def sample_classes(cfg: SoundingObjectsConfig) -> list[ObjectClass]:
    """The classes' looks (distinct shape × texture × hue) and sounds, deterministic in the seed."""
    rng = np.random.default_rng([cfg.seed, 1])
    looks = [(s, t, h) for h in range(8) for s in SHAPES for t in TEXTURES]
    picks = rng.permutation(len(looks))[:cfg.classes]
    out = []
    for k, p in enumerate(picks):
        shape, texture, hue = looks[p]
        out.append(ObjectClass(
            name=f"{shape}_{texture}_{k:02d}", shape=shape, texture=texture,
            colour=_colour(hue / 8 + rng.uniform(-0.03, 0.03), rng), bands=_bands(k, cfg.classes, rng),
            tonal=bool(rng.random() < 0.5), pattern=str(PATTERNS[k % len(PATTERNS)]),
            rate_hz=float(round(rng.uniform(1.5, 6.0), 2))))
    return out


# --- scenes --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placed:
    cls: int
    x: float  # centre, fraction of the side
    y: float
    radius: float  # fraction of the side
    motion: str  # pulse | bounce
    sounding: bool


@dataclass(frozen=True)
class Scene:
    index: int
    video_id: str
    start: int
    cls: int  # the sound's class
    split: str  # train | test
    onscreen: bool
    objects: tuple[Placed, ...]  # the sounding object first when on screen
    background: int  # 0 gradient, 1 stripes, 2 blotches
    bg_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    snr_db: float
    noise_std: float
    jitter_px: float
    band_shift: float  # multiplicative jitter of the class's bands for this clip
    rate_scale: float
    crf: int

    @property
    def file(self) -> str:
        return f"{self.video_id}_{self.start:06d}"


def _place(n: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """``n`` (x, y, radius) that do not overlap much (rejection sampling, then accept)."""
    placed = []
    for _ in range(n):
        for _try in range(50):
            r = rng.uniform(0.11, 0.16)
            x, y = rng.uniform(r + 0.04, 1 - r - 0.04, 2)
            if all(np.hypot(x - px, y - py) > (r + pr) * 1.05 for px, py, pr in placed):
                break
        placed.append((float(x), float(y), float(r)))
    return placed


def split_of(cfg: SoundingObjectsConfig, index: int) -> str:
    """Test clips: the first ``test_fraction`` of each class's clips (classes interleave)."""
    within = index // cfg.classes
    return "test" if within < max(1, int(round(cfg.test_fraction * cfg.clips_per_class))) else "train"


def sample_scene(cfg: SoundingObjectsConfig, index: int) -> Scene:
    """The latents of clip ``index`` (no pixels, no samples): deterministic in (seed, index)."""
    rng = np.random.default_rng([cfg.seed, 2, index])
    cls = index % cfg.classes
    onscreen = bool(rng.random() >= cfg.offscreen_fraction)
    n_distract = int(rng.integers(1, cfg.max_distractors + 1))
    others = rng.choice([c for c in range(cfg.classes) if c != cls], n_distract, replace=False)
    classes = ([cls] if onscreen else []) + [int(c) for c in others]
    spots = _place(len(classes), rng)
    objects = tuple(Placed(c, x, y, r, str(rng.choice(MOTIONS)), onscreen and k == 0)
                    for k, (c, (x, y, r)) in enumerate(zip(classes, spots)))
    hue = rng.uniform()
    bg = tuple(tuple(int(v) for v in np.clip(np.array(_colour(hue + d, rng)) * f, 0, 255))
               for d, f in ((0.0, 0.35), (0.1, 0.55)))
    return Scene(index=index, video_id="".join(rng.choice(list(_ALPHABET), 11)), start=int(rng.integers(0, 300)),
                 cls=cls, split=split_of(cfg, index), onscreen=onscreen, objects=objects,
                 background=int(rng.integers(3)), bg_colours=bg, snr_db=float(rng.uniform(*cfg.snr_db)),
                 noise_std=float(rng.uniform(2, 8)), jitter_px=float(rng.uniform(0.3, 1.5)),
                 band_shift=float(rng.uniform(0.95, 1.05)), rate_scale=float(rng.uniform(0.9, 1.1)),
                 crf=int(rng.integers(20, 28)))


# --- sound ---------------------------------------------------------------------------------------
def envelope(pattern: str, rate_hz: float, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The class's temporal pattern in [0, 1] at times ``t`` (seconds), random phase per clip."""
    phase = rng.uniform(0, 1)
    if pattern == "pulses":  # short raised-cosine pulses at a steady rate
        frac = (t * rate_hz + phase) % 1.0
        return np.where(frac < 0.35, 0.5 - 0.5 * np.cos(2 * np.pi * frac / 0.35), 0.0)
    if pattern == "am":  # smooth amplitude modulation
        return 0.5 + 0.5 * np.sin(2 * np.pi * (rate_hz * t + phase))
    if pattern == "bursts":  # irregular onsets with an exponential decay
        env = np.zeros_like(t)
        n = max(1, rng.poisson(rate_hz * (t[-1] - t[0] + 1e-9)))
        for onset in rng.uniform(t[0] - 0.1, t[-1], n):
            after = t - onset
            env = np.maximum(env, np.where(after >= 0, np.exp(-after * 12.0), 0.0))
        return env
    raise ValueError(f"unknown temporal pattern {pattern!r}")


def band_source(bands, tonal: bool, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS energy inside ``bands`` only: a few partials, or white noise masked in the FFT."""
    t = np.arange(n) / sample_rate
    if tonal:
        wave = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                   for lo, hi in bands for f in rng.uniform(lo, hi, 3))
    else:
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / sample_rate)
        spec[~np.any([(freqs >= lo) & (freqs <= hi) for lo, hi in bands], axis=0)] = 0
        wave = np.fft.irfft(spec, n)
    return wave / (np.sqrt(np.mean(wave**2)) + 1e-12)


def clip_bands(obj: ObjectClass, scene: Scene) -> list[tuple[float, float]]:
    return [(lo * scene.band_shift, hi * scene.band_shift) for lo, hi in obj.bands]


def render_audio(cfg: SoundingObjectsConfig, classes: list[ObjectClass], scene: Scene):
    """(waveform, per-frame envelope of the source): the class's sound under room noise."""
    rng = np.random.default_rng([cfg.seed, 3, scene.index])
    n = int(round(cfg.seconds * cfg.sample_rate))
    obj = classes[scene.cls]
    env = envelope(obj.pattern, obj.rate_hz * scene.rate_scale, np.arange(n) / cfg.sample_rate, rng)
    source = band_source(clip_bands(obj, scene), obj.tonal, n, cfg.sample_rate, rng) * (0.05 + 0.95 * env)
    noise = np.cumsum(rng.standard_normal(n)) * 0.02 + rng.standard_normal(n)  # a little reddened
    noise *= np.sqrt(np.mean(source**2) / np.mean(noise**2)) * 10 ** (-scene.snr_db / 20)
    wave = 0.25 * (source + noise)
    frame_env = env[: cfg.n_frames * (n // cfg.n_frames)].reshape(cfg.n_frames, -1).mean(1)
    return wave.astype(np.float32), frame_env.astype(np.float32)


# --- pictures ------------------------------------------------------------------------------------
def _shape_mask(shape: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """uint8 mask of one shape centred at (cx, cy) pixels, radius r pixels (anti-aliased edges)."""
    import cv2

    m = np.zeros((size, size), np.uint8)
    ang = lambda k, n, off=0.0: [(cx + r * np.cos(2 * np.pi * (i + off) / n), cy + r * np.sin(2 * np.pi * (i + off) / n))
                                 for i in range(k)]
    poly = None
    if shape in ("circle", "ring"):
        cv2.circle(m, (int(round(cx * 4)), int(round(cy * 4))), int(round(r * 4)), 255, -1, cv2.LINE_AA, shift=2)
        if shape == "ring":
            cv2.circle(m, (int(round(cx * 4)), int(round(cy * 4))), int(round(r * 0.5 * 4)), 0, -1, cv2.LINE_AA, shift=2)
        return m
    if shape == "square":
        poly = ang(4, 4, 0.5)
    elif shape == "triangle":
        poly = ang(3, 3, -0.25)
    elif shape == "diamond":
        poly = ang(4, 4)
    elif shape == "hexagon":
        poly = ang(6, 6)
    elif shape == "star":
        outer, inner = ang(5, 5, -0.25), [(cx + 0.45 * r * np.cos(2 * np.pi * (i + 0.25) / 5),
                                            cy + 0.45 * r * np.sin(2 * np.pi * (i + 0.25) / 5)) for i in range(5)]
        poly = [p for pair in zip(outer, inner) for p in pair]
    elif shape == "cross":
        w = r * 0.38
        poly = [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
                (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
                (cx - r, cy - w), (cx - w, cy - w)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cv2.fillPoly(m, [np.round(np.array(poly) * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
    return m


def _texture(texture: str, colour, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """(size, size, 3) float colour field of a textured object (only read inside its mask)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    base = np.array(colour, np.float32)
    period = max(2.0, r * 0.6)
    if texture == "solid":
        shade = np.ones_like(xx)
    elif texture == "stripes":
        shade = 0.55 + 0.45 * (((xx - cx + yy - cy) / period) % 2 < 1)
    elif texture == "checks":
        shade = 0.55 + 0.45 * ((np.floor((xx - cx) / period) + np.floor((yy - cy) / period)) % 2)
    elif texture == "dots":
        shade = 1.0 - 0.5 * ((((xx - cx) % period) - period / 2) ** 2 + (((yy - cy) % period) - period / 2) ** 2
                             < (period / 3.5) ** 2)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return base * shade[..., None]


def _background(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    a, b = (np.array(c, np.float32) for c in scene.bg_colours)
    if scene.background == 0:
        w = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) % 1.0
    elif scene.background == 1:
        w = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * rng.uniform(1, 4) + yy * rng.uniform(-2, 2)))
    else:
        w = sum(np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.03) for cx, cy in rng.uniform(0, 1, (4, 2)))
        w = np.clip(w, 0, 1)
    return a + (b - a) * w[..., None]


def object_geometry(obj: Placed, level: float, size: int) -> tuple[float, float, float]:
    """(cx, cy, r) in pixels of an object whose envelope is at ``level``: it swells by up to 30 %
    (pulse) or rises by up to 15 % of the frame (bounce)."""
    cx, cy, r = obj.x * size, obj.y * size, obj.radius * size
    if obj.motion == "pulse":
        return cx, cy, r * (1.0 + 0.3 * level)
    return cx, cy - 0.15 * size * level, r


def render_frames(cfg: SoundingObjectsConfig, classes: list[ObjectClass], scene: Scene, source_env: np.ndarray):
    """(frames (T, S, S, 3) uint8 RGB, boxes (T, 4) float pixels x1 y1 x2 y2 — NaN when off screen)."""
    rng = np.random.default_rng([cfg.seed, 4, scene.index])
    size, T = cfg.size, cfg.n_frames
    bg = _background(scene, size, rng)
    t = np.arange(T) / cfg.fps
    # Distractors move on envelopes of their own classes, so motion alone does not give the source away.
    envs = [source_env if o.sounding else
            envelope(classes[o.cls].pattern, classes[o.cls].rate_hz, t, rng).astype(np.float32) for o in scene.objects]
    jitter = np.cumsum(rng.normal(0, scene.jitter_px * 0.5, (T, 2)), axis=0).clip(-2 * scene.jitter_px,
                                                                                  2 * scene.jitter_px)
    frames = np.empty((T, size, size, 3), np.uint8)
    boxes = np.full((T, 4), np.nan, np.float32)
    for f in range(T):
        img = bg.copy()
        for o, env in zip(scene.objects, envs):
            cx, cy, r = object_geometry(o, float(env[f]), size)
            cx, cy = cx + jitter[f, 0], cy + jitter[f, 1]
            mask = _shape_mask(classes[o.cls].shape, cx, cy, r, size).astype(np.float32)[..., None] / 255.0
            img = img * (1 - mask) + _texture(classes[o.cls].texture, classes[o.cls].colour, size, cx, cy, r) * mask
            if o.sounding:
                boxes[f] = [max(0.0, cx - r), max(0.0, cy - r), min(size, cx + r), min(size, cy + r)]
        img += rng.normal(0, scene.noise_std, img.shape)
        frames[f] = np.clip(img, 0, 255).astype(np.uint8)
    return frames, boxes


# --- one clip, the whole set -----------------------------------------------------------------------
def render_clip(args) -> dict:
    """Render and write one clip (kept if it exists: resumable); returns its row and boxes."""
    cfg, classes, index, out_root = args
    scene = sample_scene(cfg, index)
    wave, env = render_audio(cfg, classes, scene)
    path = Path(out_root) / "video" / f"{scene.file}.mp4"
    frames, boxes = render_frames(cfg, classes, scene, env)
    if not path.exists():
        write_mp4(path, frames, wave, fps=cfg.fps, sample_rate=cfg.sample_rate, crf=scene.crf)
    obj = classes[scene.cls]
    row = {"file": scene.file, "video_id": scene.video_id, "start_seconds": scene.start, "label": obj.name,
           "class_index": scene.cls, "split": scene.split, "onscreen": int(scene.onscreen),
           "n_distractors": len(scene.objects) - int(scene.onscreen), "n_frames": cfg.n_frames,
           "bands_hz": json.dumps([[round(lo, 1), round(hi, 1)] for lo, hi in clip_bands(obj, scene)]),
           "motion": scene.objects[0].motion if scene.onscreen else "", "snr_db": round(scene.snr_db, 2)}
    return {"row": row, "boxes": boxes, "envelope": env}


def generate(cfg: SoundingObjectsConfig, out: str | os.PathLike, workers: int = 2, progress: bool = True) -> Path:
    """Write the whole benchmark under ``out``; re-running resumes (finished clips are kept)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "synth_config.json"
    stamp = json.loads(json.dumps({"benchmark": "sounding-objects", **asdict(cfg)}))
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != stamp:
        raise ValueError(f"{out} holds a sounding-objects set made with another config ({cfg_path}); "
                         "use a new --out or delete it")
    cfg_path.write_text(json.dumps(stamp, indent=1))
    classes = sample_classes(cfg)
    jobs = [(cfg, classes, i, str(out)) for i in range(cfg.classes * cfg.clips_per_class)]
    results = list(tqdm(imap_watched(render_clip, jobs, workers, name=lambda a: f"clip {a[2]}", chunksize=4),
                        total=len(jobs), desc="sounding-objects clips", unit="clip", disable=not progress))
    rows = [r["row"] for r in results]
    _write_csv(out / "meta.csv", rows, header=True)
    _write_csv(out / "vggsound.csv", [{k: r[k] for k in ("video_id", "start_seconds", "label", "split")}
                                      for r in rows], header=False)
    (out / "vggss.json").write_text(json.dumps(vggss_entries(cfg, results), indent=0))
    latents = out / "latents"
    latents.mkdir(exist_ok=True)
    (latents / "classes.json").write_text(json.dumps({
        "config": stamp, "classes": [asdict(c) for c in classes]}, indent=1))
    np.savez_compressed(latents / "boxes.npz", **{r["row"]["file"]: r["boxes"] for r in results})
    np.savez_compressed(latents / "envelopes.npz", **{r["row"]["file"]: r["envelope"] for r in results})
    return out


def vggss_entries(cfg: SoundingObjectsConfig, results: list[dict]) -> list[dict]:
    """VGG-SS's annotation shape: test clips with a visible source, the box on the key frame (the
    middle one the loader keeps and the protocol scores) in [0, 1]."""
    out = []
    for r in results:
        row = r["row"]
        if row["split"] != "test" or not row["onscreen"]:
            continue
        box = r["boxes"][key_frame(row["n_frames"])] / cfg.size
        out.append({"file": row["file"], "class": row["label"], "bbox": [[round(float(v), 4) for v in box]]})
    return out


def _write_csv(path: Path, rows: list[dict], header: bool) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        if header:
            w.writeheader()
        w.writerows(rows)
