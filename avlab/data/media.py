"""Reading and writing audio-visual clips: H.264 + AAC mp4 through PyAV, frames through decord.

Every failure to read a file becomes a :class:`MediaError` subclass that names the file, so a
dataset scan can list bad files and a training run can say exactly which clip broke it.
Audio is read with PyAV (decord's ``AVReader`` leaks memory; its ``AudioReader`` re-opens the
container per call).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MediaError(RuntimeError):
    """A media file cannot be used; ``path`` names it and the message says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CorruptMediaError(MediaError):
    """The container or a stream cannot be decoded (garbage, truncated, wrong format)."""


class NoAudioError(MediaError):
    """The file has no audio stream."""


class NoVideoError(MediaError):
    """The file has no video stream."""


class TooShortError(MediaError):
    """The clip is shorter than the caller needs."""


class WrongRateError(MediaError):
    """Frame rate or sample rate differs from what the dataset expects."""


@dataclass(frozen=True)
class MediaInfo:
    n_frames: int
    fps: float
    width: int
    height: int
    sample_rate: int
    n_samples: int

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps if self.fps else 0.0


def write_mp4(path: str | os.PathLike, frames_rgb: np.ndarray, audio: np.ndarray, fps: int = 25,
              sample_rate: int = 16_000, crf: int = 23) -> None:
    """Write RGB uint8 frames (T, H, W, 3) and mono float audio as H.264 + AAC, atomically.

    The file appears under its name only once complete, so an interrupted generator never leaves
    a truncated clip that looks finished.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        with av.open(tmp, "w", format="mp4") as out:
            v = out.add_stream("libx264", rate=fps)
            v.width, v.height = frames_rgb.shape[2], frames_rgb.shape[1]
            v.pix_fmt = "yuv420p"
            v.options = {"crf": str(crf), "preset": "veryfast", "tune": "fastdecode"}
            v.thread_count = 1
            a = out.add_stream("aac", rate=sample_rate, layout="mono")
            for img in frames_rgb:
                for packet in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                    out.mux(packet)
            for packet in v.encode():
                out.mux(packet)
            samples = np.clip(audio, -1, 1).astype(np.float32)[None, :]
            af = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            af.sample_rate = sample_rate
            af.pts = 0  # lets the muxer write an edit list that hides the AAC priming samples
            for packet in a.encode(af):
                out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _open(path):
    import av

    if not os.path.isfile(path):
        raise CorruptMediaError(path, "file does not exist")
    if os.path.getsize(path) == 0:
        raise CorruptMediaError(path, "file is empty")
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise CorruptMediaError(path, f"cannot open container ({exc})") from exc


def probe(path: str | os.PathLike) -> MediaInfo:
    """Stream facts, decoding nothing but headers (frames are counted by demuxing packets)."""
    import av

    with _open(path) as c:
        if not c.streams.video:
            raise NoVideoError(path, "no video stream")
        vs = c.streams.video[0]
        fps = float(vs.average_rate or 0)
        sr, n_samples = 0, 0
        if c.streams.audio:
            aus = c.streams.audio[0]
            sr = aus.sample_rate or 0
            if aus.duration is not None and aus.time_base is not None:
                n_samples = int(round(float(aus.duration * aus.time_base) * sr))
        n_frames = vs.frames
        if not n_frames:
            try:
                n_frames = sum(1 for p in c.demux(vs) if p.size)
            except av.FFmpegError as exc:
                raise CorruptMediaError(path, f"cannot demux video ({exc})") from exc
        return MediaInfo(int(n_frames), fps, vs.width or 0, vs.height or 0, int(sr), n_samples)


def read_audio(path: str | os.PathLike, sample_rate: int = 16_000, max_seconds: float | None = None) -> np.ndarray:
    """Decode the audio track (the first ``max_seconds`` of it, if given) as mono float32 at
    ``sample_rate`` (resampled if needed)."""
    import av

    limit = int(max_seconds * sample_rate) if max_seconds else None
    with _open(path) as c:
        if not c.streams.audio:
            raise NoAudioError(path, "no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks, n = [], 0
        try:
            for frame in c.decode(c.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    n += len(chunks[-1])
                if limit and n >= limit:
                    return np.concatenate(chunks)[:limit].astype(np.float32)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as exc:
            raise CorruptMediaError(path, f"audio stream cannot be decoded ({exc})") from exc
    if not chunks:
        raise CorruptMediaError(path, "audio stream decodes to no samples")
    return np.concatenate(chunks).astype(np.float32)


def read_frames(path: str | os.PathLike, indices=None, size: int | None = None) -> np.ndarray:
    """RGB uint8 frames (N, H, W, 3) at ``indices`` (all when None) by decord random access."""
    import decord

    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise CorruptMediaError(path, "file does not exist or is empty")
    try:
        kw = {"width": size, "height": size} if size else {}
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, **kw)
    except (decord.DECORDError, RuntimeError) as exc:
        raise CorruptMediaError(path, f"video stream cannot be opened ({str(exc).splitlines()[0]})") from exc
    n = len(vr)
    if n == 0:
        raise TooShortError(path, "video has no frames")
    idx = list(range(n)) if indices is None else [int(i) for i in indices]
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise TooShortError(path, f"frame {bad[0]} requested but the video has {n} frames")
    try:
        return vr.get_batch(idx).asnumpy()
    except (decord.DECORDError, RuntimeError):
        # decord 0.6 mis-copies frames whose RGB row is not aligned the way it expects (e.g. 48 px
        # wide); PyAV decodes those correctly, and raises CorruptMediaError if the file is bad.
        frames = read_frames_pyav(path)
        if size:
            import cv2

            frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
        return frames[idx]


def read_frames_pyav(path: str | os.PathLike) -> np.ndarray:
    """All frames as RGB uint8 by sequential PyAV decoding (the benchmark's reference decoder)."""
    import av

    with _open(path) as c:
        if not c.streams.video:
            raise NoVideoError(path, "no video stream")
        try:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
        except av.FFmpegError as exc:
            raise CorruptMediaError(path, f"video stream cannot be decoded ({exc})") from exc
