"""VoxCeleb1 as it is distributed: utterance wavs, VGGFace face crops, its metadata and its lists.

A VoxCeleb1 root holds::

    wav/<VoxCeleb1 ID>/<video>/<utt>.wav            16 kHz mono PCM (vox1_dev_wav + vox1_test_wav)
    vox1_meta.csv                                    tab-separated: VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set
    unzippedFaces/<VGGFace1 ID>/1.6/<video>/*.jpg    face crops per video (a folder named by the id works too)
    mp4/<VoxCeleb1 ID>/<video>/<utt>.mp4             optional: the utterance's video, for a video without jpgs
    identity_splits.txt                              optional: the Learnable-PINs identity splits
    veri_test.txt                                    optional: the official speaker-verification trials
    lists/                                           optional: voice-face lists (CMPC, Learnable PINs)

One clip is one utterance: its audio is the wav and its face frames are spread over its video's jpg
folder (the crops are per video, not per utterance), so the rest of the pipeline (cache, shards,
dataset) sees the same (16 kHz audio, a few RGB frames) per clip as for an mp4. Its ``n_frames``
counts the utterance's length in frames of the 25 fps source video (:data:`FPS`).

Splits follow the identity: ``Set`` test → ``unseen_unheard`` and dev → ``train``, as VoxCeleb2's top
folders do. ``identity_splits.txt`` (``<VGGFace1 ID> <1|2|3|4>``) overrides this with the
Learnable-PINs splits (train, val, seen-heard, unseen-unheard) that the CMPC lists were drawn from —
their unseen-unheard identities are dev identities of the ``Set`` column.

The list files name voices relative to ``wav/`` (``id10002/<video>/00001.wav``; the Learnable-PINs
verification lists ``<name>/<video>_0000001.wav``) and faces as VGGFace jpgs
(``<name>/1.6/<video>/<frame>.jpg``, or without ``1.6``): :meth:`Layout.voice_clip` and
:meth:`Layout.face_file` resolve them. :mod:`avlab.data.voxceleb` calls in here for such a root.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np

from avlab.data import media

META = "vox1_meta.csv"
WAV = "wav"
FACES = "unzippedFaces"
VIDEOS = "mp4"
SPLITS_FILE = "identity_splits.txt"
VERI_TEST = "veri_test.txt"
FACE_VERSION = "1.6"  # the VGGFace crop release the lists name: <name>/1.6/<video>/<frame>.jpg
LAYOUT = f"{WAV}/<id>/<video>/<utt>.wav + {META} + {FACES}/<name>/{FACE_VERSION}/<video>/*.jpg (VoxCeleb1)"
SAMPLE_RATE = 16_000
FPS = 25.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SET_SPLITS = {"dev": "train", "test": "unseen_unheard"}
PINS_SPLITS = {"1": "train", "2": "val", "3": "seen_heard", "4": "unseen_unheard"}
CHECK_SIZE = 16  # faces decoded only to check them are resized to this (the decoding is the check)


class FormatError(ValueError):
    """A VoxCeleb1 metadata, split or trial file does not have the expected fields; names the file and line."""


@dataclass(frozen=True)
class Person:
    id: str  # VoxCeleb1 ID, e.g. id10001: the wav folder's name
    name: str  # VGGFace1 ID, e.g. A.J._Buckley: the face folder's name
    gender: str
    nationality: str
    set: str  # dev | test


class Trial(NamedTuple):
    """One line of ``veri_test.txt``: same speaker (1) or not (0), and two utterances (relative to ``wav/``)."""
    label: int
    enrol: str
    test: str


def _lines(path: Path):
    """(line number, line) of the non-blank lines of a text file: blank lines are no error."""
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            yield n, line


def read_meta(path: str | os.PathLike) -> dict[str, Person]:
    """People by VoxCeleb1 ID, from ``vox1_meta.csv``: tab-separated (nationalities hold spaces),
    a header line, stray spaces around fields tolerated.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / META
    >>> _ = p.write_text("VoxCeleb1 ID\\tVGGFace1 ID\\tGender\\tNationality\\tSet\\n"
    ...                  "id10001\\tA.J._Buckley\\tm\\tIreland\\tdev\\n")
    >>> read_meta(p)["id10001"].name
    'A.J._Buckley'
    """
    people = {}
    for n, line in _lines(path):
        fields = [f.strip() for f in line.split("\t")]
        if fields[0] == "VoxCeleb1 ID":
            continue
        if len(fields) != 5:
            raise FormatError(f"{path}:{n}: expected 5 tab-separated fields (VoxCeleb1 ID, VGGFace1 ID, Gender, "
                              f"Nationality, Set), got {len(fields)}")
        if fields[4] not in SET_SPLITS:
            raise FormatError(f"{path}:{n}: Set must be 'dev' or 'test', got {fields[4]!r}")
        people[fields[0]] = Person(*fields)
    if not people:
        raise FormatError(f"{path}: no identities")
    return people


def read_identity_splits(path: str | os.PathLike) -> dict[str, str]:
    """Split by VGGFace1 ID from a Learnable-PINs ``identity_splits.txt`` (``<name> <1|2|3|4>`` a line)."""
    splits = {}
    for n, line in _lines(path):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in PINS_SPLITS:
            raise FormatError(f"{path}:{n}: expected '<VGGFace1 ID> <1|2|3|4>', got {line.strip()!r}")
        splits[fields[0]] = PINS_SPLITS[fields[1]]
    return splits


def read_veri_test(path: str | os.PathLike) -> list[Trial]:
    """The trials of ``veri_test.txt`` (also ``veri_test2.txt``, ``list_test_*.txt``): ``label path path``
    a line, label 1 for the same speaker, paths relative to ``wav/``.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / VERI_TEST
    >>> _ = p.write_text("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\\n")
    >>> read_veri_test(p)
    [Trial(label=1, enrol='id10270/x6uYqmx31kE/00001.wav', test='id10270/8jEAjG6SegY/00008.wav')]
    """
    trials = []
    for n, line in _lines(path):
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ("0", "1") or not all(f.endswith(".wav") for f in fields[1:]):
            raise FormatError(f"{path}:{n}: expected '<0|1> <id>/<video>/<utt>.wav <id>/<video>/<utt>.wav', "
                              f"got {line.strip()!r}")
        trials.append(Trial(int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise FormatError(f"{path}: no trials")
    return trials


# --- the layout ----------------------------------------------------------------------------------
def is_voxceleb1(root: str | os.PathLike) -> bool:
    """True for a root in VoxCeleb1's distributed layout: ``wav/`` beside its metadata or its faces
    (a root with faces but no metadata is recognised, and indexing it says what is missing)."""
    root = Path(root)
    return (root / WAV).is_dir() and ((root / META).is_file() or (root / FACES).is_dir())


def _stamp(root: Path) -> list:
    """Modification times of the files that decide identities and splits: a changed one re-indexes."""
    return [(root / name).stat().st_mtime_ns if (root / name).exists() else None for name in (META, SPLITS_FILE)]


def layout(root: str | os.PathLike) -> Layout | None:
    """The :class:`Layout` of a VoxCeleb1 root (read once per process while its metadata is
    unchanged), or None for a root in another layout."""
    if not is_voxceleb1(root):
        return None
    root = Path(root).resolve()
    return _read_layout(root, tuple(_stamp(root)))


@functools.lru_cache(maxsize=8)
def _read_layout(root: Path, stamp: tuple) -> Layout:
    return Layout(root)


class Layout:
    """A VoxCeleb1 root: who is who (``vox1_meta.csv``), each identity's split, and where a clip's
    audio and face frames are."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not (self.root / META).is_file():
            raise FileNotFoundError(f"{self.root} has {WAV}/ but no {META}: VoxCeleb1 needs its metadata "
                                    f"(identities, face-folder names, dev/test sets); download it beside {WAV}/")
        self.people = read_meta(self.root / META)
        self.by_name = {p.name: p for p in self.people.values()}
        splits = self.root / SPLITS_FILE
        self.pins_splits = read_identity_splits(splits) if splits.exists() else {}

    @property
    def stamp(self) -> list:
        return _stamp(self.root)

    def find_clips(self) -> list[str]:
        """Every utterance, as a path relative to the root: ``wav/<id>/<video>/<utt>.wav``."""
        return sorted(str(p.relative_to(self.root)) for p in (self.root / WAV).glob("*/*/*.wav"))

    def person(self, key: str) -> Person | None:
        """The person with this VoxCeleb1 ID or VGGFace1 ID (name)."""
        return self.people.get(key) or self.by_name.get(key)

    def split_of(self, identity: str) -> str:
        person = self.people.get(identity)
        if person is None:
            return "train"
        return self.pins_splits.get(person.name) or SET_SPLITS[person.set]

    def split_of_path(self, rel: str | os.PathLike) -> str:
        """The split of the clip at ``wav/<id>/…`` (its identity's), e.g. for a file that cannot be read."""
        parts = Path(rel).parts
        return self.split_of(parts[1] if len(parts) > 1 else "")

    def face_dirs(self, person: Person, video: str) -> list[Path]:
        """Where a video's face crops may be: under the name or the id, with or without ``1.6/``."""
        return [self.root / FACES / key / sub / video for key in (person.name, person.id) for sub in (FACE_VERSION, "")]

    def face_source(self, rel: str) -> Path:
        """Where the clip's face frames come from: its video's jpg folder, else its own mp4; a
        MediaError naming what is missing otherwise."""
        identity, video, utt = _clip_parts(rel)
        path = self.root / rel
        person = self.people.get(identity)
        if person is None:
            raise media.MediaError(path, f"identity {identity} is not in {META}: its face folder and split are unknown")
        folder = next((d for d in self.face_dirs(person, video) if d.is_dir()), None)
        if folder is not None:
            return folder
        mp4 = self.root / VIDEOS / identity / video / f"{utt}.mp4"
        if mp4.exists():
            return mp4
        raise media.MissingMediaError(path, f"no face frames: neither {FACES}/{person.name}/{FACE_VERSION}/{video}/ "
                                            f"nor {VIDEOS}/{identity}/{video}/{utt}.mp4 exists")

    def read_faces(self, rel: str, positions, size: int, notes: list | None = None) -> np.ndarray:
        """RGB uint8 (N, size, size, 3) face frames of the clip at ``positions`` (fractions of its
        frame list; None: all of them). Damaged jpgs are skipped for their nearest neighbour and
        said in ``notes``; a folder with no decodable jpg is a CorruptMediaError."""
        source = self.face_source(rel)
        if source.suffix == ".mp4":
            return media.read_frames(source, size=size, positions=positions, notes=notes)
        files = self.face_files(rel, source)
        picks = range(len(files)) if positions is None else [_position(p, len(files)) for p in positions]
        damaged: dict[int, str] = {}
        frames = np.stack([self._decodable_near(rel, files, i, size, damaged) for i in picks])
        if damaged:
            named = "; ".join(f"{self._rel(files[j])}: {why}" for j, why in sorted(damaged.items()))
            media.tell(self.root / rel, notes,
                        f"skipped {len(damaged)} damaged face frame(s) of {len(files)} ({named})")
        return frames

    def face_files(self, rel: str, folder: Path) -> list[Path]:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise media.MissingMediaError(self.root / rel, f"face folder {self._rel(folder)}/ holds no .jpg frames")
        return files

    def _decodable_near(self, rel: str, files: list[Path], i: int, size: int, damaged: dict) -> np.ndarray:
        """Face ``i``, or the nearest one that decodes (recording those that do not in ``damaged``)."""
        for j in _outward(i, len(files)):
            if j in damaged:
                continue
            try:
                return read_face(files[j], size)
            except media.MediaError as exc:
                damaged[j] = exc.reason
        first = min(damaged)
        raise media.CorruptMediaError(self.root / rel, f"none of the {len(files)} face frames in "
                                                       f"{self._rel(files[0].parent)}/ decodes "
                                                       f"(e.g. {files[first].name}: {damaged[first]})")

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    # --- the lists' paths ------------------------------------------------------------------------
    def voice_clip(self, list_path: str) -> str | None:
        """The clip path (``wav/<id>/<video>/<utt>.wav``) that a list's voice path names, or None when
        it names none: ``<id>/<video>/<utt>.wav`` (CMPC, veri_test.txt; a name for the id works too,
        ``wav/`` in front too) or ``<name>/<video>_<7-digit utt>.wav`` (Learnable-PINs verification
        lists; utterance ``0000001`` taken to be ``00001.wav``). Existence is not checked."""
        parts = PurePosixPath(list_path).parts
        parts = parts[1:] if parts and parts[0] == WAV else parts
        if len(parts) == 3:
            key, video, utt = parts
        elif len(parts) == 2 and "_" in parts[1]:
            key, (video, number) = parts[0], PurePosixPath(parts[1]).stem.rsplit("_", 1)
            if not number.isdigit():
                return None
            utt = f"{int(number):05d}.wav"
        else:
            return None
        person = self.person(key)
        return f"{WAV}/{person.id if person else key}/{video}/{utt}"

    def face_file(self, list_path: str) -> tuple[Path, str] | None:
        """(the jpg, its VoxCeleb1 ID) that a list's face path names — ``<name or id>/1.6/<video>/<frame>.jpg``,
        with or without ``1.6/`` or a leading ``unzippedFaces/`` — or None when no such file exists."""
        parts = PurePosixPath(list_path).parts
        parts = parts[1:] if parts and parts[0] == FACES else parts
        if len(parts) == 4 and parts[1] == FACE_VERSION:
            parts = (parts[0], *parts[2:])
        person = self.person(parts[0]) if len(parts) == 3 else None
        if person is None:
            return None
        hit = next((d / parts[2] for d in self.face_dirs(person, parts[1]) if (d / parts[2]).is_file()), None)
        return (hit, person.id) if hit else None


def _clip_parts(rel: str) -> tuple[str, str, str]:
    """(identity, video, utterance) of ``wav/<id>/<video>/<utt>.wav``."""
    p = Path(rel)
    return p.parts[-3], p.parts[-2], p.stem


def _position(p: float, n: int) -> int:
    """Index of position ``p`` in [0, 1] among ``n`` items (as :func:`avlab.data.media.read_frames`)."""
    return int(min(max(float(p), 0.0), 1.0) * (n - 1) + 0.5)


def _outward(i: int, n: int):
    """``i``, then its neighbours at growing distance, within ``range(n)``."""
    yield i
    for d in range(1, n):
        yield from (j for j in (i + d, i - d) if 0 <= j < n)


# --- reading the files ---------------------------------------------------------------------------
def _sf_reason(exc: BaseException, path) -> str:
    """libsndfile's reason without its "Error opening '<path>': " prefix."""
    text = str(exc).split("': ", 1)[-1] if "Error opening" in str(exc) else media.why(exc, path)
    return text.rstrip(". ") or type(exc).__name__


def wav_info(path: str | os.PathLike):
    """soundfile's header facts of a PCM wav; a MediaError that names why when it is not one."""
    import soundfile as sf

    media.check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as exc:
        raise media.CorruptMediaError(path, f"cannot be read as WAV ({_sf_reason(exc, path)})") from None
    if not info.subtype.startswith("PCM"):
        raise media.CorruptMediaError(path, f"audio is {info.subtype_info or info.subtype}, not PCM: VoxCeleb1's wavs "
                                            "are 16-bit PCM (convert with ffmpeg -c:a pcm_s16le -ar 16000 -ac 1)")
    if not info.frames:
        raise media.CorruptMediaError(path, "audio holds no samples")
    return info


def wav_seconds(path: str | os.PathLike) -> float:
    info = wav_info(path)
    return info.frames / info.samplerate


def read_wav(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples of a PCM wav at ``sample_rate`` (channels averaged, resampled if its
    rate differs). A file cut short is read as far as it goes, as libsndfile does."""
    import soundfile as sf

    wav_info(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise media.CorruptMediaError(path, f"audio cannot be decoded ({_sf_reason(exc, path)})") from None
    wave = data.mean(axis=1)
    if rate != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(rate), sample_rate)
        wave = resample_poly(wave, sample_rate // g, int(rate) // g).astype(np.float32)
    return wave


def read_face(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) of one face image, resized to ``size``² when given (as decord resizes
    video frames: the whole image, no crop); a CorruptMediaError when it does not decode (PIL's
    decoder refuses a truncated jpg, where OpenCV would return it grey-filled)."""
    from PIL import Image, UnidentifiedImageError

    media.check_file(path)
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size:
                img = img.resize((size, size), Image.BILINEAR)
            return np.array(img)  # a copy: writable, as torch.from_numpy wants
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise media.CorruptMediaError(path, f"image cannot be decoded ({media.why(exc, path)})") from None


# --- what avlab.data.voxceleb calls per clip --------------------------------------------------------
def probe_clip(root: str | os.PathLike, rel: str, min_seconds: float) -> dict:
    """{"path", "n_frames", "fps"} of a usable utterance from headers and folder listings only: a
    PCM wav of at least ``min_seconds`` and a face source with at least one image (nothing decoded)."""
    lay, path = layout(root), Path(root) / rel
    seconds = wav_seconds(path)
    if seconds < min_seconds:
        raise media.TooShortError(path, f"{seconds:.2f} s is shorter than {min_seconds} s")
    source = lay.face_source(rel)
    if source.is_dir():
        lay.face_files(rel, source)
    return {"path": rel, "n_frames": int(round(seconds * FPS)), "fps": FPS}


def check_clip(root: str | os.PathLike, rel: str, min_seconds: float, deep: bool, notes: list) -> float:
    """Decode-check an utterance: its whole wav and its first and last face frames (``deep``: all
    of them); returns its length in seconds. Problems worked around go into ``notes``."""
    audio = read_wav(Path(root) / rel)
    seconds = len(audio) / SAMPLE_RATE
    if seconds < min_seconds:
        raise media.TooShortError(Path(root) / rel, f"audio lasts {seconds:.2f} s, less than {min_seconds} s")
    layout(root).read_faces(rel, None if deep else [0.0, 1.0], CHECK_SIZE, notes)
    return seconds


def read_clip(root: str | os.PathLike, rel: str, positions, size: int,
              notes: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mono float32 16 kHz audio, RGB face frames at ``positions``, ``size``²) of one utterance."""
    return read_wav(Path(root) / rel), layout(root).read_faces(rel, positions, size, notes)
