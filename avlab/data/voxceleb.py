"""VoxCeleb-layout voice-face data: index, scan, pre-extracted cache, torch dataset.

Layout: ``<root>/{dev,test}/mp4/<identity>/<video>/<utt>.mp4`` (VoxCeleb2; the synthetic
talking-faces set uses the same). Clip splits come from ``meta.csv`` when the set has one (the
synthetic sets do), otherwise from the top folder: ``dev`` → ``train``, ``test`` →
``unseen_unheard``. VoxCeleb1 as distributed (``wav/<id>/<video>/<utt>.wav``, ``vox1_meta.csv``,
``unzippedFaces/`` jpgs) is read too: its clips are the wavs, their faces the video's jpgs, and the
functions below hand such a clip to :mod:`avlab.data.voxceleb1`.

* :func:`index_dataset` walks a root once and caches the clip list (``$AVLAB_CACHE`` or
  ``~/.cache/avlab``); files that cannot be probed are listed as bad, not fatal. By default it
  reads headers only ("probed": a partial download can pass); ``deep=True`` decodes every clip
  ("decoded").
* :func:`scan` decodes every file's audio and first/last frames (``deep``: every frame and
  sample) and reports each bad one, and the problems it worked around.
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

from avlab.data import media, voxceleb1
from avlab.data.clipstore import CachedClips, ShardClips
from avlab.data.features import MelConfig, log_mel
from avlab.data.loader import seeded_subset
from avlab.data.shards import MANIFEST as SHARDS_MANIFEST
from avlab.data.shards import ShardReader
from avlab.parallel import imap_watched

INDEX_VERSION = 1
CACHE_VERSION = 2  # 2: damaged packets skipped, frames picked by position among those that decode
MIN_SECONDS = 0.5
MAX_BAD_SHARE = 0.05  # more bad clips than this share of a split → a warning


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
    checked: str = "probed"  # "probed": headers read (clips listed in a generated set's meta.csv are
    # trusted); "decoded": every frame and sample of every clip decoded

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


def _clip_files(root: Path) -> list[str]:
    """The clips under ``root``, relative to it: VoxCeleb1's utterance wavs, else every mp4."""
    vox1 = voxceleb1.layout(root)
    return vox1.find_clips() if vox1 else [str(p.relative_to(root)) for p in _find_clips(root)]


def _path_split(root: Path):
    """How a clip's split follows from its path alone (also for a file that cannot be read):
    VoxCeleb1's from its identity's set, else from the top folder."""
    vox1 = voxceleb1.layout(root)
    return vox1.split_of_path if vox1 else _split_from_path


def _usable(path: Path) -> media.MediaInfo:
    """Probe ``path`` and require an audio stream and at least ``MIN_SECONDS``."""
    info = media.probe(path)
    if info.sample_rate == 0:
        raise media.NoAudioError(path, "no audio stream")
    if info.duration < MIN_SECONDS:
        raise media.TooShortError(path, f"{info.duration:.2f} s is shorter than {MIN_SECONDS} s")
    return info


def _probe_one(args) -> dict:
    """{"path", "n_frames", "fps"} of a usable clip (``deep``: its frames counted by decoding them
    all, not read from its header), else its {"path", "error", "reason"}."""
    root, rel, deep = args
    try:
        if rel.endswith(".wav"):  # a VoxCeleb1 utterance: its wav and its video's face jpgs
            return _decoded_wav_clip(root, rel) if deep else voxceleb1.probe_clip(root, rel, MIN_SECONDS)
        info = _usable(Path(root) / rel)
        n_frames = _decode_all(Path(root) / rel, [])["frames"] if deep else info.n_frames
        return {"path": rel, "n_frames": n_frames, "fps": info.fps}
    except media.MediaError as exc:
        return exc.to_dict(rel)


def _decoded_wav_clip(root: str, rel: str) -> dict:
    """:func:`_probe_one`'s answer for a VoxCeleb1 utterance decoded whole (wav and every face jpg)."""
    seconds = voxceleb1.check_clip(root, rel, MIN_SECONDS, deep=True, notes=[])
    return {"path": rel, "n_frames": int(round(seconds * voxceleb1.FPS)), "fps": voxceleb1.FPS}


def _decode_all(path: Path, notes: list) -> dict:
    """Every frame and sample decoded; too little audio is an error, as for the cache."""
    decoded = media.check_decodes(path, notes)
    if decoded["seconds"] < MIN_SECONDS:
        raise media.TooShortError(path, f"audio lasts {decoded['seconds']:.2f} s, less than {MIN_SECONDS} s")
    return decoded


def index_dataset(root: str | os.PathLike, rescan: bool = False, workers: int = 2, progress: bool = True,
                  deep: bool = False) -> Index:
    """The clips under ``root`` (cached after the first call; ``rescan`` forces a new walk). Clips are
    probed (headers only) unless ``deep``: then every clip is decoded, meta.csv's included, and
    one that does not decode is listed as bad."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    vox1 = voxceleb1.layout(root)  # VoxCeleb1 as distributed (wav + jpg), else None
    meta = root / "meta.csv"
    stamp = vox1.stamp if vox1 else meta.stat().st_mtime_ns if meta.exists() else None
    checked = "decoded" if deep else "probed"
    cache = cache_dir() / f"index-{_key(root, INDEX_VERSION, *(['deep'] if deep else []))}.json"
    if cache.exists() and not rescan:
        data = json.loads(cache.read_text())
        if data.get("stamp") == stamp:
            return Index(str(root), [Clip(**c) for c in data["clips"]], data["bad"], checked)

    files = _clip_files(root)
    if not files:
        expected = voxceleb1.LAYOUT if vox1 else "{dev,test}/mp4/<id>/<video>/<utt>.mp4"
        raise FileNotFoundError(f"no {'.wav' if vox1 else '.mp4'} clips under {root} (expected {expected})")
    known, split_of = {}, _path_split(root)
    if meta.exists() and not vox1:
        with open(meta, newline="") as f:
            known = {r["path"]: r for r in csv.DictReader(f)}
    clips, bad = [], []
    todo = [p for p in files if deep or p not in known]
    for p in files:
        if p in known and not deep:
            r = known[p]
            clips.append(Clip(p, r["identity"], r["video"], r["utt"], r["clip_split"], int(r["n_frames"]), 25.0))
    if todo:
        args = [(str(root), p, deep) for p in todo]
        probed = list(tqdm(imap_watched(_probe_one, args, workers, name=lambda a: a[1], chunksize=4 if deep else 16),
                           total=len(args), desc=f"indexing {root.name}" + (" (decoding)" if deep else ""),
                           disable=not progress))
        for r in probed:
            if "error" in r:
                bad.append(r)
            elif r["path"] in known:
                k = known[r["path"]]
                clips.append(Clip(r["path"], k["identity"], k["video"], k["utt"], k["clip_split"], r["n_frames"], 25.0))
            else:
                rel = Path(r["path"])
                clips.append(Clip(r["path"], rel.parts[-3], rel.parts[-2], rel.stem, split_of(rel),
                                  r["n_frames"], r["fps"]))
    clips.sort(key=lambda c: c.path)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")  # per process: two jobs may index one root at once
    tmp.write_text(json.dumps({"root": str(root), "stamp": stamp, "clips": [asdict(c) for c in clips], "bad": bad}))
    os.replace(tmp, cache)
    return Index(str(root), clips, bad, checked)


def _check_one(args) -> dict | None:
    """None for a clip that decodes cleanly; {"path", "notes"} for one with problems worked around;
    {"path", "error", "reason"} for one that cannot be used."""
    root, rel, deep = args
    path = Path(root) / rel
    notes = []
    try:
        if rel.endswith(".wav"):  # a VoxCeleb1 utterance: its wav and its video's face jpgs
            voxceleb1.check_clip(root, rel, MIN_SECONDS, deep, notes)
            return {"path": rel, "notes": notes} if notes else None
        info = _usable(path)
        if deep:
            _decode_all(path, notes)
        else:
            audio = media.read_audio(path, notes=notes)
            if len(audio) < MIN_SECONDS * 16_000:
                raise media.TooShortError(path, f"audio lasts {len(audio) / 16_000:.2f} s, less than {MIN_SECONDS} s")
            media.read_frames(path, positions=[0.0, 1.0], notes=notes)  # the header's count may over-claim
    except media.MediaError as exc:
        return exc.to_dict(rel)
    return {"path": rel, "notes": notes} if notes else None


def scan(root: str | os.PathLike, workers: int = 2, progress: bool = True, deep: bool = False) -> dict:
    """Decode-check every clip under ``root``: its audio and first and last frames, or with ``deep``
    every frame and sample. Returns {"root", "n_files", "checked", "bad": [{"path", "error",
    "reason"}], "warned": [{"path", "notes"}]} (warned: usable, with problems worked around, e.g.
    damaged packets skipped); never raises for a file."""
    root = Path(root).resolve()
    files = _clip_files(root)
    args = [(str(root), f, deep) for f in files]
    results = list(tqdm(imap_watched(_check_one, args, workers, name=lambda a: a[1], chunksize=2 if deep else 8),
                        total=len(args), desc=f"scanning {root.name}", disable=not progress))
    return {"root": str(root), "n_files": len(files), "checked": "decoded" if deep else "sampled",
            "bad": [r for r in results if r and "error" in r], "warned": [r for r in results if r and "notes" in r]}


# --- pre-extracted cache -----------------------------------------------------------------------
def decode_clip(root: str | os.PathLike, clip: Clip, frames_per_clip: int, size: int,
                notes: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(int16 16 kHz mono audio, ``frames_per_clip`` RGB frames of ``size``²) of one clip — what the
    cache and the shards keep; a MediaError when it cannot be used. Problems worked around (damaged
    packets skipped) go into ``notes``."""
    path = Path(root) / clip.path
    # Frames by position among those that decode: a header that over-claims frames does not matter.
    positions = np.linspace(0, 1, frames_per_clip + 2)[1:-1]
    if clip.path.endswith(".wav"):  # a VoxCeleb1 utterance: frames spread over its video's face jpgs
        audio, frames = voxceleb1.read_clip(root, clip.path, positions, size, notes)
    else:
        audio = media.read_audio(path, notes=notes)
        frames = media.read_frames(path, size=size, positions=positions, notes=notes)
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16), frames


def _extract_one(args) -> dict:
    """{"path", "audio" (int16), "frames", "notes"} of one clip; when it cannot be decoded, its
    {"path", "error", "reason"} if ``skip_bad``, else its MediaError is raised. Runs in a worker."""
    root, clip, n_frames_kept, size, skip_bad = args
    notes = []
    try:
        audio, frames = decode_clip(root, clip, n_frames_kept, size, notes)
    except media.MediaError as exc:
        if not skip_bad:
            raise
        return exc.to_dict(clip.path)
    return {"path": clip.path, "audio": audio, "frames": frames, "notes": notes}


def build_cache(index: Index, clips: list[Clip], size: int, frames_per_clip: int = 4, workers: int = 2,
                progress: bool = True, on_bad: str = "skip", max_bad_share: float = MAX_BAD_SHARE,
                known_bad: list[dict] = ()) -> Path:
    """Decode ``clips`` once into an ``.npz``; returns its path. It holds int16 ``audio`` (clip ``k``
    is ``audio[offsets[k]:offsets[k + 1]]``), ``frames`` (K, ``frames_per_clip``, S, S, 3), ``paths``:
    the clips it holds, in order, ``bad``: a JSON list of {"path", "error", "reason"}, and ``warned``:
    a JSON list of {"path", "notes"} for clips kept with problems worked around (damaged packets).

    A clip that fails to decode (index_dataset only reads headers, so a partial download can get
    this far) is left out and listed in ``bad`` with ``on_bad="skip"`` — ``paths`` is then shorter
    than ``clips``: align by it — and a warning says so when more than ``max_bad_share`` of the clips
    are bad; ``on_bad="fail"`` raises its MediaError instead. ``known_bad`` (e.g. the index's bad
    files) counts towards both. A reused cache applies the same policy.
    """
    check_on_bad(on_bad)
    stamps = [f"{c.path}@{media.modified_ns(Path(index.root) / c.path)}" for c in clips]
    key = _key(index.root, size, frames_per_clip, CACHE_VERSION, *stamps)
    out = cache_dir() / f"clips-{key}.npz"
    if not out.exists():
        _write_cache(out, index, clips, size, frames_per_clip, workers, progress, on_bad)
    with np.load(out) as data:
        bad = json.loads(str(data["bad"])) if "bad" in data else []  # caches from before "bad" lost no clip
    bad = [*known_bad, *bad]
    if bad and on_bad == "fail":
        raise media.MediaError.from_dict(bad[0], index.root)
    warn_if_many_bad(bad, len(clips) + len(known_bad), max_bad_share,
                     f"once they are fixed, delete {out} to rebuild it")
    return out


def _write_cache(out: Path, index: Index, clips: list[Clip], size: int, frames_per_clip: int, workers: int,
                 progress: bool, on_bad: str) -> None:
    args = [(index.root, c, frames_per_clip, size, on_bad == "skip") for c in clips]
    decoded = list(tqdm(imap_watched(_extract_one, args, workers, name=lambda a: a[1].path, chunksize=8),
                        total=len(args), desc="decoding clips into the cache", disable=not progress))
    kept = [r for r in decoded if "error" not in r]
    bad = [r for r in decoded if "error" in r]
    if not kept:
        raise ValueError(f"none of the {len(clips)} clips could be decoded"
                         + (f", e.g. {bad[0]['path']}: {bad[0]['reason']}" if bad else ""))
    warned = [{"path": r["path"], "notes": r["notes"]} for r in kept if r["notes"]]
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.npz")  # per process: two jobs may build one cache at once
    np.savez(tmp, audio=np.concatenate([r["audio"] for r in kept]),
             offsets=np.concatenate([[0], np.cumsum([len(r["audio"]) for r in kept])]),
             frames=np.stack([r["frames"] for r in kept]), paths=np.array([r["path"] for r in kept]),
             bad=np.array(json.dumps(bad)), warned=np.array(json.dumps(warned)))
    os.replace(tmp, out)


def check_on_bad(on_bad: str) -> None:
    if on_bad not in ("skip", "fail"):
        raise ValueError(f"on_bad must be 'skip' or 'fail', got {on_bad!r}")


def warn_if_many_bad(bad: list[dict], total: int, max_share: float = MAX_BAD_SHARE, advice: str = "") -> None:
    """A RuntimeWarning naming a few bad clips when more than ``max_share`` of ``total`` are bad."""
    if not total or len(bad) <= max_share * total:
        return
    examples = "; ".join(f"{b['path']}: {b['reason']}" for b in bad[:3])
    warnings.warn(f"{len(bad)} of {total} clips ({len(bad) / total:.0%}) could not be decoded and are left out "
                  f"({examples}{'; …' if len(bad) > 3 else ''})" + (f"; {advice}" if advice else ""),
                  RuntimeWarning, stacklevel=3)


def _bad_of_splits(bad: list[dict], splits, split_of=_split_from_path) -> list[dict]:
    """The index's bad files that would have belonged to ``splits``: a file that cannot be probed
    has no split but the one its path implies (``split_of``; by default its top folder's: test →
    unseen_unheard; dev → the others)."""
    return [b for b in bad if (split_of(Path(b["path"])) == "unseen_unheard") == ("unseen_unheard" in splits)
            or (len(splits) > 1 and "unseen_unheard" in splits)]


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


MAX_CACHE_GB = 4.0  # the in-RAM cache is for sets that fit; larger ones are read from shards


def check_cache_fits(clips: list[Clip], face_size: int, frames_per_clip: int, root) -> None:
    """Refuse to decode a raw layout into memory when it would not fit comfortably (more than
    ``$AVLAB_MAX_CACHE_GB``, default 4): memory must not grow with the dataset; shards do not."""
    limit = float(os.environ.get("AVLAB_MAX_CACHE_GB", MAX_CACHE_GB))
    seconds = sum(c.n_frames / (c.fps or 25.0) for c in clips)
    need = (seconds * 16_000 * 2 + len(clips) * frames_per_clip * face_size**2 * 3) / 2**30
    if need > limit:
        raise ValueError(f"{len(clips)} clips of {root} would take ~{need:.1f} GB in memory decoded (limit "
                         f"{limit:g} GB, $AVLAB_MAX_CACHE_GB): write them as shards once with `avlab prepare shards "
                         f"--data {root} --out SHARDS` and train on --data SHARDS")


class VoiceFaceDataset:
    """(face, voice log-mel, clip index, identity index) samples of one or more clip splits.

    Training samples a random cached frame (randomly flipped) and a random ``crop_seconds`` audio
    window; evaluation takes the middle frame and the whole utterance. The randomness of sample
    ``i`` is a function of (``seed``, ``epoch``, ``i``) only — set ``epoch`` each epoch — so a
    resumed run sees exactly the samples an uninterrupted one would, whatever the loader workers.

    Bad clips follow ``on_bad``: "skip" (default) leaves them out and lists them in :attr:`bad` —
    those the index could not probe and those that did not decode — with a warning when more than
    :data:`MAX_BAD_SHARE` are bad; "fail" raises the first one's MediaError. :meth:`write_bad_clips`
    saves the list (e.g. into a run folder).
    """

    def __init__(self, root: str | os.PathLike, splits=("train",), face_size: int = 64, crop_seconds: float = 2.0,
                 train: bool = True, mel: MelConfig = MelConfig(), frames_per_clip: int = 4, workers: int = 2,
                 progress: bool = True, augment: bool = True, paths=None, on_bad: str = "skip"):
        import torch  # noqa: F401  (fail early with a clear import error)

        check_on_bad(on_bad)
        self.train, self.face_size, self.mel = train, face_size, mel
        self.seed, self.epoch, self.augment = 0, 0, augment
        self.videos: list[list[int]] | None = None  # clip indices per video, with items per video
        self.crop = int(crop_seconds * mel.sample_rate)
        if (Path(root) / SHARDS_MANIFEST).exists():  # pre-decoded shards (`avlab prepare shards`)
            self._open_shards(Path(root), splits, paths)
            return
        self.index = index_dataset(root, workers=workers, progress=progress)
        self.clips = self.index.split(*splits)
        known_bad = [] if paths is not None else _bad_of_splits(self.index.bad, splits, _path_split(Path(root)))
        if paths is not None:  # only these clips (relative paths), e.g. a demo's gallery
            keep = set(paths)
            self.clips = [c for c in self.clips if c.path in keep]
        if not self.clips:
            raise ValueError(f"no clips of split(s) {splits} in {root}"
                             + (f" that can be read ({len(known_bad)} cannot: see `avlab scan {root}`)"
                                if known_bad else ""))
        self.n_listed = len(self.clips) + len(known_bad)  # clips found, bad ones included
        check_cache_fits(self.clips, face_size, frames_per_clip, root)
        data = np.load(build_cache(self.index, self.clips, face_size, frames_per_clip, workers, progress,
                                   on_bad=on_bad, known_bad=known_bad))
        kept = set(data["paths"].tolist())  # clips that failed to decode are left out of the cache
        self.clips = [c for c in self.clips if c.path in kept]
        self.bad = known_bad + (json.loads(str(data["bad"])) if "bad" in data else [])
        self.warned = json.loads(str(data["warned"])) if "warned" in data else []
        self._store, self._rows = CachedClips(data), list(range(len(self.clips)))
        self._set_labels()

    def _open_shards(self, root: Path, splits, paths) -> None:
        """Clips from shards, read from disk on demand: memory holds only the offset index."""
        reader = ShardReader(root)
        prepared = reader.manifest["preprocessing"]["face_size"]
        if prepared != self.face_size:
            raise ValueError(f"{root} holds {prepared}-px faces (its shards.json); train with --face-size {prepared} "
                             f"or prepare shards at {self.face_size} px")
        clips = [Clip(**m) for m in reader.meta]
        keep = set(paths) if paths is not None else None
        self._rows = [r for r, c in enumerate(clips) if c.split in splits and (keep is None or c.path in keep)]
        self.clips = [clips[r] for r in self._rows]
        if not self.clips:
            raise ValueError(f"no clips of split(s) {splits} in the shards at {root}")
        self.index = Index(str(root), clips, reader.manifest.get("index_bad", []))
        self.bad = [b for b in reader.manifest.get("bad", []) + self.index.bad]
        self.warned, self.n_listed = [], len(self.clips) + len(self.bad)
        self._store = ShardClips(reader)
        self._set_labels()

    def _set_labels(self) -> None:
        self.identities = sorted({c.identity for c in self.clips})
        self.label_of = {name: i for i, name in enumerate(self.identities)}
        if self.videos is not None:
            self.group_by_video()

    def group_by_video(self) -> None:
        """One item per video (identity, video) instead of per clip — CMPC's released loader: each time
        an item is drawn it takes a random utterance of the video (and a random frame of it), and a
        method's memory bank holds one entry per video. Training only: evaluation scores clips."""
        groups: dict[tuple[str, str], list[int]] = {}
        for j, c in enumerate(self.clips):
            groups.setdefault((c.identity, c.video), []).append(j)
        self.videos = list(groups.values())

    def clip_of_item(self, i: int, rng: np.random.Generator | None) -> int:
        """The clip item ``i`` reads: itself, or with items per video a random utterance of video ``i``
        (its first one without a generator)."""
        if self.videos is None:
            return i
        group = self.videos[i]
        return group[int(rng.integers(len(group)))] if rng is not None else group[0]

    def bad_clips(self) -> dict:
        """{"n_clips", "n_bad", "bad_share", "bad": [{"path", "error", "reason"}], "warned": [{"path",
        "notes"}]}: the clips left out, and those kept with problems worked around."""
        return {"root": Path(self.index.root).name, "checked": self.index.checked, "n_clips": self.n_listed,
                "n_bad": len(self.bad), "bad_share": round(len(self.bad) / max(self.n_listed, 1), 4),
                "bad": self.bad, "warned": self.warned}

    def write_bad_clips(self, folder: str | os.PathLike, name: str = "bad_clips.json") -> Path:
        """Save :meth:`bad_clips` as ``folder/name`` (written even when empty, so a run shows it was
        checked); returns the path."""
        path = Path(folder) / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.bad_clips(), indent=1))
        os.replace(tmp, path)
        return path

    def subset(self, fraction: float, seed: int = 0) -> None:
        """Keep a seeded random ``fraction`` of the clips (at least one), e.g. for low-shot labels."""
        keep = seeded_subset(len(self.clips), fraction, seed)
        self.clips = [self.clips[i] for i in keep]
        self._rows = [self._rows[i] for i in keep]
        self._set_labels()

    def __len__(self) -> int:
        return len(self.clips) if self.videos is None else len(self.videos)

    def audio(self, i: int) -> np.ndarray:
        return self._store.audio(self._rows[i]).astype(np.float32) / 32767.0

    def frame(self, i: int, frame: int | None = None) -> np.ndarray:
        """RGB uint8 (S, S, 3) cached frame ``frame`` of clip ``i`` (the middle one by default)."""
        k = self._store.frames_per_clip
        return self._store.frames(self._rows[i])[k // 2 if frame is None else frame]

    def face(self, i: int, frame: int | None = None, flip: bool = False, rng: np.random.Generator | None = None):
        if rng is not None:  # training augmentation
            frame, flip = int(rng.integers(self._store.frames_per_clip)), bool(rng.random() < 0.5)
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
        """The clip of every item (with items per video: the video's first clip)."""
        return [self.clips[self.clip_of_item(i, None)].path for i in range(len(self))]

    def __getitem__(self, key) -> dict:
        """Sample ``key`` = ``(epoch, i)`` (or ``i``, in the current ``epoch``): ``face`` (3, S, S) in
        [-1, 1] and ``wave`` (samples,); :meth:`collate` batches them."""
        import torch

        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng([self.seed, epoch, i]) if self.train else None
        j = self.clip_of_item(i, rng)
        return {"face": self.face(j, rng=rng), "wave": torch.from_numpy(self.wave_crops(j, rng=rng)[0]), "index": i,
                "label": self.label_of[self.clips[j].identity]}

    def collate(self, items: list[dict]) -> dict:
        """Stack samples and compute the batch's log-mels in one call (much cheaper than per clip)."""
        import torch

        return {"face": torch.stack([x["face"] for x in items]),
                "voice": log_mel(torch.stack([x["wave"] for x in items]), self.mel),
                "index": torch.tensor([x["index"] for x in items]), "label": torch.tensor([x["label"] for x in items])}
