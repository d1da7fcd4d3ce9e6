"""VoxCeleb-layout voice-face data: index, scan, pre-extracted cache, torch dataset.

Layout: ``<root>/{dev,test}/mp4/<identity>/<video>/<utt>.mp4`` (VoxCeleb2; the synthetic
talking-faces set uses the same). Clip splits come from ``meta.csv`` when the set has one (the
synthetic sets do), otherwise from the top folder: ``dev`` → ``train``, ``test`` →
``unseen_unheard``.

* :func:`index_dataset` walks a root once and caches the clip list (``$AVLAB_CACHE`` or
  ``~/.cache/avlab``); files that cannot be probed are listed as bad, not fatal.
* :func:`scan` decodes every file's audio and first/last frames and reports each bad one.
* :class:`VoiceFaceDataset` serves (face frame, log-mel crop, index, identity) from a cache of
  decoded audio and a few frames per clip, built once with a progress bar, so CPU training does
  not decode video every step.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avlab.data import media
from avlab.data.features import MelConfig, log_mel
from avlab.parallel import imap_watched

INDEX_VERSION = 1
MIN_SECONDS = 0.5


@dataclass(frozen=True)
class Clip:
    path: str  # relative to the root, as in the lists
    identity: str
    video: str
    utt: str
    split: str  # train | val | seen_heard | unseen_unheard
    n_frames: int
    fps: float


@dataclass
class Index:
    root: str
    clips: list[Clip]
    bad: list[dict]  # {"path", "error", "reason"}

    def split(self, *names: str) -> list[Clip]:
        return [c for c in self.clips if c.split in names]

    @property
    def identities(self) -> list[str]:
        return sorted({c.identity for c in self.clips})


def cache_dir() -> Path:
    d = Path(os.environ.get("AVLAB_CACHE", Path.home() / ".cache" / "avlab"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _key(*parts) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def _find_clips(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.mp4") if not p.name.startswith(".tmp-"))


def _split_from_path(rel: Path) -> str:
    return "unseen_unheard" if rel.parts[0] == "test" else "train"


def _usable(path: Path) -> media.MediaInfo:
    """Probe ``path`` and require an audio stream and at least ``MIN_SECONDS``."""
    info = media.probe(path)
    if info.sample_rate == 0:
        raise media.NoAudioError(path, "no audio stream")
    if info.duration < MIN_SECONDS:
        raise media.TooShortError(path, f"{info.duration:.2f} s is shorter than {MIN_SECONDS} s")
    return info


def _probe_one(args) -> dict:
    root, rel = args
    try:
        info = _usable(Path(root) / rel)
        return {"path": rel, "n_frames": info.n_frames, "fps": info.fps}
    except media.MediaError as exc:
        return exc.to_dict(rel)


def index_dataset(root: str | os.PathLike, rescan: bool = False, workers: int = 2, progress: bool = True) -> Index:
    """The clips under ``root`` (cached after the first call; ``rescan`` forces a new walk)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    meta = root / "meta.csv"
    stamp = meta.stat().st_mtime_ns if meta.exists() else None
    cache = cache_dir() / f"index-{_key(root, INDEX_VERSION)}.json"
    if cache.exists() and not rescan:
        data = json.loads(cache.read_text())
        if data.get("stamp") == stamp:
            return Index(str(root), [Clip(**c) for c in data["clips"]], data["bad"])

    files = [str(p.relative_to(root)) for p in _find_clips(root)]
    if not files:
        raise FileNotFoundError(f"no .mp4 clips under {root} (expected {{dev,test}}/mp4/<id>/<video>/<utt>.mp4)")
    known = {}
    if meta.exists():
        with open(meta, newline="") as f:
            known = {r["path"]: r for r in csv.DictReader(f)}
    clips, bad = [], []
    todo = [p for p in files if p not in known]
    for p in files:
        if p in known:
            r = known[p]
            clips.append(Clip(p, r["identity"], r["video"], r["utt"], r["clip_split"], int(r["n_frames"]), 25.0))
    if todo:
        args = [(str(root), p) for p in todo]
        probed = list(tqdm(imap_watched(_probe_one, args, workers, name=lambda a: a[1], chunksize=16),
                           total=len(args), desc=f"indexing {root.name}", disable=not progress))
        for r in probed:
            if "error" in r:
                bad.append(r)
                continue
            rel = Path(r["path"])
            clips.append(Clip(r["path"], rel.parts[-3], rel.parts[-2], rel.stem, _split_from_path(rel),
                              r["n_frames"], r["fps"]))
    clips.sort(key=lambda c: c.path)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"root": str(root), "stamp": stamp, "clips": [asdict(c) for c in clips], "bad": bad}))
    os.replace(tmp, cache)
    return Index(str(root), clips, bad)


def _check_one(args) -> dict | None:
    root, rel = args
    path = Path(root) / rel
    try:
        info = _usable(path)
        audio = media.read_audio(path)
        if len(audio) < MIN_SECONDS * 16_000:
            raise media.TooShortError(path, f"audio has only {len(audio)} samples")
        media.read_frames(path, [0, info.n_frames - 1])
        return None
    except media.MediaError as exc:
        return exc.to_dict(rel)


def scan(root: str | os.PathLike, workers: int = 2, progress: bool = True) -> dict:
    """Decode-check every clip under ``root``; returns {"n_files", "bad": [...]}, never raises for a file."""
    root = Path(root).resolve()
    files = [str(p.relative_to(root)) for p in _find_clips(root)]
    args = [(str(root), f) for f in files]
    results = list(tqdm(imap_watched(_check_one, args, workers, name=lambda a: a[1], chunksize=8), total=len(args),
                        desc=f"scanning {root.name}", disable=not progress))
    return {"root": str(root), "n_files": len(files), "bad": [r for r in results if r]}


# --- pre-extracted cache -----------------------------------------------------------------------
def _extract_one(args) -> dict:
    """{"path", "audio" (int16), "frames"} of one clip; when it cannot be decoded, its
    {"path", "error", "reason"} if ``skip_bad``, else its MediaError is raised. Runs in a worker."""
    root, clip, n_frames_kept, size, skip_bad = args
    path = Path(root) / clip.path
    idx = np.linspace(0, clip.n_frames - 1, n_frames_kept + 2)[1:-1].round().astype(int)
    try:
        audio = media.read_audio(path)
        frames = media.read_frames(path, idx, size=size)
    except media.MediaError as exc:
        if not skip_bad:
            raise
        return exc.to_dict(clip.path)
    return {"path": clip.path, "audio": (np.clip(audio, -1, 1) * 32767).astype(np.int16), "frames": frames}


def build_cache(index: Index, clips: list[Clip], size: int, frames_per_clip: int = 4, workers: int = 2,
                progress: bool = True, on_bad: str = "skip", max_bad_share: float = 0.05) -> Path:
    """Decode ``clips`` once into an ``.npz``; returns its path. It holds int16 ``audio`` (clip ``k``
    is ``audio[offsets[k]:offsets[k + 1]]``), ``frames`` (K, ``frames_per_clip``, S, S, 3), ``paths``:
    the clips it holds, in order, and ``bad``: a JSON list of {"path", "error", "reason"}.

    A clip that fails to decode (index_dataset only reads headers, so a partial download can get
    this far) is left out and listed in ``bad`` with ``on_bad="skip"`` — ``paths`` is then shorter
    than ``clips``: align by it — and a warning says so when more than ``max_bad_share`` of the clips
    are bad; ``on_bad="fail"`` raises its MediaError instead. A reused cache applies the same policy.
    """
    if on_bad not in ("skip", "fail"):
        raise ValueError(f"on_bad must be 'skip' or 'fail', got {on_bad!r}")
    key = _key(index.root, size, frames_per_clip, *[c.path for c in clips])
    out = cache_dir() / f"clips-{key}.npz"
    if not out.exists():
        args = [(index.root, c, frames_per_clip, size, on_bad == "skip") for c in clips]
        decoded = list(tqdm(imap_watched(_extract_one, args, workers, name=lambda a: a[1].path, chunksize=8),
                            total=len(args), desc="decoding clips into the cache", disable=not progress))
        kept = [r for r in decoded if "error" not in r]
        bad = [r for r in decoded if "error" in r]
        if not kept:
            raise ValueError(f"none of the {len(clips)} clips could be decoded"
                             + (f", e.g. {bad[0]['path']}: {bad[0]['reason']}" if bad else ""))
        tmp = out.with_name(out.stem + ".tmp.npz")
        np.savez(tmp, audio=np.concatenate([r["audio"] for r in kept]),
                 offsets=np.concatenate([[0], np.cumsum([len(r["audio"]) for r in kept])]),
                 frames=np.stack([r["frames"] for r in kept]), paths=np.array([r["path"] for r in kept]),
                 bad=np.array(json.dumps(bad)))
        os.replace(tmp, out)
    with np.load(out) as data:
        bad = json.loads(str(data["bad"])) if "bad" in data else []  # caches from before "bad" lost no clip
    if bad and on_bad == "fail":
        raise media.MediaError.from_dict(bad[0], index.root)
    if len(bad) > max_bad_share * len(clips):
        examples = "; ".join(f"{b['path']}: {b['reason']}" for b in bad[:3])
        warnings.warn(f"{len(bad)} of {len(clips)} clips ({len(bad) / len(clips):.0%}) could not be decoded and "
                      f"are left out of the cache ({examples}{'; …' if len(bad) > 3 else ''}); "
                      f"once they are fixed, delete {out} to rebuild it",
                      RuntimeWarning, stacklevel=2)
    return out


def frame_to_tensor(frame: np.ndarray):
    """RGB uint8 (H, W, 3) → float tensor (3, H, W) in [-1, 1], the encoders' input scale."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float() / 127.5 - 1.0


def even_crops(wave: np.ndarray, crop: int, n_crops: int) -> np.ndarray:
    """(n_crops, crop) evenly spaced windows covering ``wave`` (zero-padded when shorter than ``crop``).

    >>> even_crops(np.arange(10.0), 4, 3)[:, 0]
    array([0., 3., 6.])
    """
    wave = np.pad(wave, (0, max(0, crop - len(wave))))
    starts = np.linspace(0, len(wave) - crop, n_crops).astype(int)
    return np.stack([wave[s:s + crop] for s in starts])


def augment_face(img, rng: np.random.Generator):
    """Random resized crop (75–100 % of the side) and colour jitter (brightness, per-channel gain,
    sometimes grey): instance contrast must not be solvable by a clip's framing or colours."""
    import torch
    import torch.nn.functional as F

    side = img.shape[-1]
    crop = int(round(side * rng.uniform(0.75, 1.0)))
    y, x = rng.integers(side - crop + 1, size=2)
    img = F.interpolate(img[None, :, y:y + crop, x:x + crop], size=(side, side), mode="bilinear",
                        align_corners=False)[0]
    gain = torch.from_numpy(rng.uniform(0.8, 1.2, (3, 1, 1))).float() * float(rng.uniform(0.7, 1.3))
    img = (img + 1.0) * gain - 1.0
    if rng.random() < 0.2:
        img = img.mean(0, keepdim=True).expand_as(img)
    return img.clamp(-1.0, 1.0)


def augment_wave(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random gain and white noise at 10–40 dB SNR."""
    power = (crops**2).mean(axis=-1, keepdims=True) + 1e-8
    snr_db = rng.uniform(10, 40, (len(crops), 1))
    noise = rng.standard_normal(crops.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return ((crops + noise) * rng.uniform(0.5, 1.5, (len(crops), 1))).astype(np.float32)


class VoiceFaceDataset:
    """(face, voice log-mel, clip index, identity index) samples of one or more clip splits.

    Training samples a random cached frame (randomly flipped) and a random ``crop_seconds`` audio
    window; evaluation takes the middle frame and the whole utterance. The randomness of sample
    ``i`` is a function of (``seed``, ``epoch``, ``i``) only — set ``epoch`` each epoch — so a
    resumed run sees exactly the samples an uninterrupted one would, whatever the loader workers.
    """

    def __init__(self, root: str | os.PathLike, splits=("train",), face_size: int = 64, crop_seconds: float = 2.0,
                 train: bool = True, mel: MelConfig = MelConfig(), frames_per_clip: int = 4, workers: int = 2,
                 progress: bool = True, augment: bool = True, paths=None):
        import torch  # noqa: F401  (fail early with a clear import error)

        self.index = index_dataset(root, workers=workers, progress=progress)
        self.clips = self.index.split(*splits)
        if paths is not None:  # only these clips (relative paths), e.g. a demo's gallery
            keep = set(paths)
            self.clips = [c for c in self.clips if c.path in keep]
        if not self.clips:
            raise ValueError(f"no clips of split(s) {splits} in {root}")
        self.train, self.face_size, self.mel = train, face_size, mel
        self.seed, self.epoch, self.augment = 0, 0, augment
        self.crop = int(crop_seconds * mel.sample_rate)
        data = np.load(build_cache(self.index, self.clips, face_size, frames_per_clip, workers, progress))
        kept = set(data["paths"].tolist())  # clips that failed to decode are left out of the cache
        self.clips = [c for c in self.clips if c.path in kept]
        self.bad = json.loads(str(data["bad"])) if "bad" in data else []
        self.identities = sorted({c.identity for c in self.clips})
        self.label_of = {name: i for i, name in enumerate(self.identities)}
        self._audio, self._offsets, self._frames = data["audio"], data["offsets"], data["frames"]
        self._audio_parts = list(zip(self._offsets[:-1], self._offsets[1:]))

    def subset(self, fraction: float, seed: int = 0) -> None:
        """Keep a seeded random ``fraction`` of the clips (at least one), e.g. for low-shot labels."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
        n = max(1, int(round(fraction * len(self.clips))))
        keep = np.sort(np.random.default_rng([seed, 99]).choice(len(self.clips), n, replace=False))
        self.clips = [self.clips[i] for i in keep]
        self._frames = self._frames[keep]
        self._audio_parts = [(self._offsets[i], self._offsets[i + 1]) for i in keep]
        self.identities = sorted({c.identity for c in self.clips})
        self.label_of = {name: i for i, name in enumerate(self.identities)}

    def __len__(self) -> int:
        return len(self.clips)

    def audio(self, i: int) -> np.ndarray:
        start, end = self._audio_parts[i]
        return self._audio[start:end].astype(np.float32) / 32767.0

    def frame(self, i: int, frame: int | None = None) -> np.ndarray:
        """RGB uint8 (S, S, 3) cached frame ``frame`` of clip ``i`` (the middle one by default)."""
        k = self._frames.shape[1]
        return self._frames[i, k // 2 if frame is None else frame]

    def face(self, i: int, frame: int | None = None, flip: bool = False, rng: np.random.Generator | None = None):
        if rng is not None:  # training augmentation
            frame, flip = int(rng.integers(self._frames.shape[1])), bool(rng.random() < 0.5)
        img = frame_to_tensor(self.frame(i, frame))
        img = img.flip(-1) if flip else img
        return augment_face(img, rng) if rng is not None and self.augment else img

    def wave_crops(self, i: int, n_crops: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
        """(n, samples) windows of ``crop_seconds``: one random (training) or ``n_crops`` evenly spaced."""
        wave = self.audio(i)
        if rng is None:
            return even_crops(wave, self.crop, n_crops)
        wave = np.pad(wave, (0, max(0, self.crop - len(wave))))
        start = int(rng.integers(len(wave) - self.crop + 1))
        crops = wave[None, start:start + self.crop]
        return augment_wave(crops, rng) if self.augment else crops

    def voice_crops(self, i: int, n_crops: int = 1, rng: np.random.Generator | None = None):
        """Log-mels (n, n_mels, frames) of :meth:`wave_crops`."""
        import torch

        return log_mel(torch.from_numpy(self.wave_crops(i, n_crops, rng)), self.mel)

    @property
    def n_classes(self) -> int:
        return len(self.identities)

    def sample_names(self) -> list[str]:
        return [c.path for c in self.clips]

    def __getitem__(self, key) -> dict:
        """Sample ``key`` = ``(epoch, i)`` (or ``i``, in the current ``epoch``): ``face`` (3, S, S) in
        [-1, 1] and ``wave`` (samples,); :meth:`collate` batches them."""
        import torch

        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng([self.seed, epoch, i]) if self.train else None
        return {"face": self.face(i, rng=rng), "wave": torch.from_numpy(self.wave_crops(i, rng=rng)[0]), "index": i,
                "label": self.label_of[self.clips[i].identity]}

    def collate(self, items: list[dict]) -> dict:
        """Stack samples and compute the batch's log-mels in one call (much cheaper than per clip)."""
        import torch

        return {"face": torch.stack([x["face"] for x in items]),
                "voice": log_mel(torch.stack([x["wave"] for x in items]), self.mel),
                "index": torch.tensor([x["index"] for x in items]), "label": torch.tensor([x["label"] for x in items])}
