"""Reading and writing audio-visual clips: H.264 + AAC mp4 through PyAV, frames through decord.

Every failure to read a file becomes a :class:`MediaError` subclass that names the file, so a
dataset scan can list bad files and a training run can say exactly which clip broke it. Reasons
are short and readable: no errno, no second copy of the path, no decoder source locations; the
decoders' own log lines never reach the terminal (PyAV is silent by default; decord's are
captured, see :func:`_quiet_stderr`).
Audio is read with PyAV (decord's ``AVReader`` leaks memory; its ``AudioReader`` re-opens the
container per call).

Decoding is tolerant, as the ffmpeg tool is: damaged packets are skipped and counted, a file cut
short is used as far as it goes, and only a stream that lost more than :data:`MAX_LOST_SHARE` is
refused; what was worked around is reported (a ``notes`` list, or a :class:`MediaWarning`). Frame
counts come from decoding, not headers (``read_frames(positions=…)``).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import os
import re
import stat
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class MediaError(RuntimeError):
    """A media file cannot be used; ``path`` names it and ``reason`` says why.

    ``MediaError(path, reason)`` is the normal form. ``MediaError(message)`` also works (``path``
    is then None and the message is kept whole) because torch's DataLoader re-raises a worker's
    error as ``type(message)``. Errors pickle by (path, reason), so they cross process pools.
    """

    def __init__(self, path_or_message: str | os.PathLike, reason: str | None = None):
        if reason is None:
            self.path, self.reason = None, str(path_or_message)
        else:
            self.path, self.reason = str(path_or_message), str(reason)
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.reason if self.path is None else f"{self.path}: {self.reason}"

    def __reduce__(self):
        # The default rebuilds with ``cls(*self.args)`` = one message, losing ``path``; a worker's
        # error that cannot be rebuilt kills the pool's result thread and hangs ``imap``.
        args = (self.reason,) if self.path is None else (self.path, self.reason)
        return type(self), args, self.__dict__

    def to_dict(self, path: str | None = None) -> dict:
        """{"path", "error", "reason"}: how scans and caches list a bad file (``path`` as the caller
        names it, e.g. relative to a dataset root)."""
        return {"path": self.path if path is None else path, "error": type(self).__name__, "reason": self.reason}

    @staticmethod
    def from_dict(entry: dict, root: str | os.PathLike = "") -> MediaError:
        """The error a :meth:`to_dict` entry describes, its path joined to ``root``."""
        cls = globals().get(entry["error"])
        cls = cls if isinstance(cls, type) and issubclass(cls, MediaError) else MediaError
        return cls(os.path.join(root, entry["path"]), entry["reason"])


class CorruptMediaError(MediaError):
    """The container or a stream cannot be decoded (garbage, truncated, wrong format)."""


class MissingMediaError(CorruptMediaError):
    """There is no media file at the path: it does not exist, is a broken link or a folder."""


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


def modified_ns(path: str | os.PathLike) -> int:
    """A file's modification time in ns, 0 when it is missing: part of a decode cache's key, so that
    a set regenerated in place is decoded again (a missing file is named when decoding it fails)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def rgb_to_yuv420p(frames_rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 frames (T, H, W, 3) as yuv420p planes (T, H·3/2, W), as PyAV's array layout
    expects (Y, then the U and V rows): BT.601 limited range in the usual 8-bit integer form,
    chroma from the sum of each 2×2 block.

    Ours rather than swscale's (what PyAV's ``reformat`` calls when it is handed RGB): swscale's
    YUV pixels depend on where the RGB array happens to sit in memory (measured: one frame at five
    addresses gave four different results), so the same frames written twice could differ.
    Integers, not floats, so that no BLAS kernel or thread count rounds differently."""
    if frames_rgb.dtype != np.uint8 or frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB frames (T, H, W, 3), got {frames_rgb.dtype} {frames_rgb.shape}")
    t, h, w, _ = frames_rgb.shape
    if h % 2 or w % 2:
        raise ValueError(f"frames of {w}×{h}: H.264 in yuv420p needs an even width and height")
    r, g, b = (frames_rgb[..., c].astype(np.int32) for c in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    block = lambda c: c.reshape(t, h // 2, 2, w // 2, 2).sum(axis=(2, 4))  # noqa: E731
    r4, g4, b4 = block(r), block(g), block(b)
    u = ((-38 * r4 - 74 * g4 + 112 * b4 + 512) >> 10) + 128
    v = ((112 * r4 - 94 * g4 - 18 * b4 + 512) >> 10) + 128
    chroma = np.concatenate([c.reshape(t, -1) for c in (u, v)], axis=1).reshape(t, h // 2, w)  # U then V, flat
    return np.concatenate([y, chroma], axis=1).clip(0, 255).astype(np.uint8)


@contextlib.contextmanager
def _allocations_filled():
    """Within: glibc fills every new heap block with a fixed byte (``mallopt(M_PERTURB)``).

    x264 reads memory it has not written: the same frames encoded over and over in one process gave
    5 different files in 150 tries, depending on what earlier allocations had left in the heap.
    With its allocations filled, 150 of 150 agreed. A no-op where the C library is not glibc."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None or not mallopt(_M_PERTURB, _PERTURB_BYTE):
        yield
        return
    try:
        yield
    finally:
        mallopt(_M_PERTURB, 0)


_M_PERTURB, _PERTURB_BYTE = -6, 0x5A


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL(None)  # the process's own C library
    except OSError:  # pragma: no cover - no dynamic C library
        return None


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
        with _allocations_filled(), av.open(tmp, "w", format="mp4") as out:
            v = out.add_stream("libx264", rate=fps)
            v.width, v.height = frames_rgb.shape[2], frames_rgb.shape[1]
            v.pix_fmt = "yuv420p"
            v.options = {"crf": str(crf), "preset": "veryfast", "tune": "fastdecode"}
            v.thread_count = 1
            a = out.add_stream("aac", rate=sample_rate, layout="mono")
            for planes in rgb_to_yuv420p(frames_rgb):
                for packet in v.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")):
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


# --- why a file cannot be read -------------------------------------------------------------------
_SOURCE_LOCATION = re.compile(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: (Error: )?")  # decord: "[10:21:33] /src/x.cc:486: "
_ERROR_CODE = re.compile(r"failed with (-?\d+)")


def _ffmpeg_message(code: int) -> str:
    """FFmpeg's text for an error code, e.g. 1094995529 → "Invalid data found when processing input"."""
    import av

    try:
        av.error.err_check(-abs(code))
    except Exception as exc:  # the FFmpegError (an OSError) that the code stands for
        return getattr(exc, "strerror", None) or f"error {code}"
    return f"error {code}"


def why(exc: BaseException, path) -> str:
    """A decoder's or the OS's error as a short reason: the text without ``[Errno n]``, without the
    quoted path (the error names the file already) and without decord's source location."""
    text = getattr(exc, "strerror", None) or next(iter(str(exc).strip().splitlines()), "")
    text = _ERROR_CODE.sub(lambda m: f"failed: {_ffmpeg_message(int(m.group(1)))}", _SOURCE_LOCATION.sub("", text))
    for spelling in sorted({str(path), os.path.abspath(path)}, key=len, reverse=True):
        text = text.replace(f"[{spelling}] ", "").replace(spelling, "the file")  # decord: "[/x/a.mp4] Failed to …"
    return text.rstrip(". ") or type(exc).__name__


def check_file(path) -> None:
    """Say plainly when ``path`` holds no media at all, before a decoder gives a vaguer error."""
    try:
        st = os.stat(path)  # follows links, so a link to a good clip is fine
    except FileNotFoundError:
        raise MissingMediaError(path, "broken link: its target does not exist" if os.path.islink(path)
                                else "file does not exist") from None
    except OSError as exc:  # e.g. permission denied on a parent folder, a loop of links
        raise MissingMediaError(path, why(exc, path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise MissingMediaError(path, "is a folder, not a media file")
    if not stat.S_ISREG(st.st_mode):
        raise MissingMediaError(path, "is not a regular file")
    if st.st_size == 0:
        raise CorruptMediaError(path, "file is empty")


def _unopenable(path, exc: BaseException) -> str:
    """Why FFmpeg cannot open the container. An MP4 cut short (a partial download) loses its index,
    the ``moov`` box written last, and FFmpeg only says "invalid data": name the likely cause."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp":
        return "file is truncated or damaged: it starts like an MP4 but its index cannot be read " \
               "(incomplete download or copy?)"
    return f"cannot open container ({why(exc, path)})"


def _truncation(path) -> str | None:
    """"file is truncated …" when ``path`` holds fewer video packets than its header lists (a
    partial download of an MP4 whose index comes first), else None."""
    import av

    try:
        with av.open(str(path)) as c:
            # Only an MP4's index is exact; AVI headers often over-claim frames in complete files.
            if "mp4" not in c.format.name or not c.streams.video or not c.streams.video[0].frames:
                return None
            vs = c.streams.video[0]
            declared, present = vs.frames, sum(1 for p in c.demux(vs) if p.size)
    except av.FFmpegError:
        return None
    if present >= declared:
        return None
    return f"file is truncated: {present} of its {declared} video frames are present (incomplete download or copy?)"


def _decode_error(path, what: str, exc: BaseException) -> CorruptMediaError:
    return CorruptMediaError(path, _truncation(path) or f"{what} ({why(exc, path)})")


# --- keeping decoder chatter off the terminal ------------------------------------------------------
_DECODER_LINE = re.compile(r"^(\[\d\d:\d\d:\d\d\] \S+:\d+: |\[[^\]@]+ @ 0x[0-9a-f]+\] )")  # decord's, FFmpeg's
_quiet = threading.Lock()
_quiet_users = 0
_redirect = None  # (dup of the real fd 2, capture file) while decord runs


@contextlib.contextmanager
def _quiet_stderr():
    """Send fd 2 to a temporary file while decord runs.

    decord's C++ logger (and its bundled FFmpeg) print lines like ``[10:21:33] /github/workspace/
    src/video/video_reader.cc:486: ...`` straight to fd 2, past ``sys.stderr``, so only an fd-level
    redirect silences them. fd 2 belongs to the whole process: concurrent users share one redirect
    (counted under a lock), the last one out restores fd 2 and passes on what other threads wrote
    meanwhile, and decoder lines go to the debug log.
    """
    global _quiet_users, _redirect
    with _quiet:
        if _quiet_users == 0:
            _flush_sys_stderr()
            capture = tempfile.TemporaryFile()
            _redirect = (os.dup(2), capture)
            os.dup2(capture.fileno(), 2)
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet:
            _quiet_users -= 1
            text = _end_redirect() if _quiet_users == 0 else ""
        _pass_on(text)


def _flush_sys_stderr() -> None:
    with contextlib.suppress(Exception):  # sys.stderr may be None or a closed stream
        sys.stderr.flush()


def _end_redirect() -> str:
    global _redirect
    saved, capture = _redirect
    _redirect = None
    _flush_sys_stderr()
    os.dup2(saved, 2)
    os.close(saved)
    with capture:
        capture.seek(0)
        return capture.read().decode("utf-8", "replace")


def _pass_on(text: str) -> None:
    others = []
    for line in text.splitlines(keepends=True):
        if _DECODER_LINE.match(line):
            log.debug("decoder: %s", line.rstrip())
        else:
            others.append(line)
    if others:
        os.write(2, "".join(others).encode())


def _reset_quiet_in_child() -> None:
    # A fork while fd 2 is redirected would leave the child's stderr in the capture file, and
    # the lock held by a thread that does not exist there.
    global _quiet, _quiet_users, _redirect
    _quiet, _quiet_users = threading.Lock(), 0
    if _redirect is not None:
        _end_redirect()


os.register_at_fork(after_in_child=_reset_quiet_in_child)
# A decoder or frame converter that is garbage but not yet collected (a caught error's traceback
# holds them in a reference cycle) would be freed in a forked child (a pool or DataLoader worker),
# which inherits FFmpeg's objects but not their threads: freeing them there waits for those threads
# forever. Collecting before each fork frees them here, where the threads exist.
os.register_at_fork(before=gc.collect)


@functools.cache
def _decord():
    """decord, with its bundled FFmpeg's logging off (its own logger needs :func:`_quiet_stderr`)."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    return decord


# --- reading ---------------------------------------------------------------------------------------
def _open(path):
    import av

    check_file(path)
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise CorruptMediaError(path, _unopenable(path, exc)) from exc


def _declared_seconds(stream) -> float:
    """The length the container's header gives ``stream`` (0 when it gives none)."""
    if stream.duration is None or stream.time_base is None:
        return 0.0
    return float(stream.duration * stream.time_base)


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
            sr = c.streams.audio[0].sample_rate or 0
            n_samples = int(round(_declared_seconds(c.streams.audio[0]) * sr))
        n_frames = vs.frames
        if not n_frames:
            try:
                n_frames = sum(1 for p in c.demux(vs) if p.size)
            except av.FFmpegError as exc:
                raise CorruptMediaError(path, f"cannot demux video ({why(exc, path)})") from exc
        return MediaInfo(int(n_frames), fps, vs.width or 0, vs.height or 0, int(sr), n_samples)


# --- tolerant decoding ---------------------------------------------------------------------------
MAX_LOST_SHARE = 0.1  # a stream missing more than this share (damaged packets, or cut off) is refused


class MediaWarning(UserWarning):
    """A problem a reader worked around (damaged packets skipped, a file cut short but mostly
    there); the message names the file. Issued when the caller passes no ``notes`` list."""


def tell(path, notes: list | None, text: str) -> None:
    """Hand a tolerated problem to the caller: into ``notes`` when given, else as a MediaWarning."""
    if notes is not None:
        notes.append(text)
    else:
        import warnings

        warnings.warn(MediaWarning(f"{path}: {text}"), stacklevel=4)  # the reader's caller


@dataclass
class _Tally:
    """What decoding one stream met: packets read, packets the decoder rejected."""

    packets: int = 0
    bad: int = 0
    bad_seconds: float = 0.0


def _single_threaded(ctx):
    """Decode in the calling thread. FFmpeg's own decoder threads would make a process that forks a
    pool while a decoder object is still alive (e.g. held by a caught error's traceback) hang: the
    child inherits the decoder but not its threads, and freeing it there waits for them forever.
    One thread per decoder is also what a pool of decoding workers wants (as decord's num_threads=1)."""
    ctx.thread_count = 1
    ctx.thread_type = "NONE"
    return ctx


@dataclass(frozen=True)
class _Gap:
    """Stands in for a damaged packet's frames: ``seconds`` of the stream are missing."""

    seconds: float


def _decoded(c, stream, tally: _Tally):
    """The frames of ``stream``, with a :class:`_Gap` for each packet the decoder rejects — skipped,
    as the ffmpeg tool does, instead of failing the whole file on one damaged packet."""
    import av

    ctx = _single_threaded(stream.codec_context)
    for packet in c.demux(stream):
        if not packet.size:  # the demuxer's end-of-stream marker
            continue
        tally.packets += 1
        try:
            frames = ctx.decode(packet)
        except av.FFmpegError:
            tally.bad += 1
            seconds = float(packet.duration * packet.time_base) if packet.duration and packet.time_base else 0.0
            tally.bad_seconds += seconds
            yield _Gap(seconds)
            continue
        yield from frames
    try:
        yield from ctx.decode(None)  # frames the decoder still holds
    except av.FFmpegError:
        pass


def _check_loss(path, what: str, tally: _Tally, notes: list | None) -> None:
    """Refuse a stream that lost more than MAX_LOST_SHARE of its packets; note a smaller loss."""
    if not tally.bad:
        return
    if tally.bad > MAX_LOST_SHARE * tally.packets:
        raise CorruptMediaError(path, f"{what} stream cannot be decoded: {tally.bad} of its {tally.packets} packets "
                                      "are damaged (re-encode or replace the file)")
    tell(path, notes, f"skipped {tally.bad} damaged {what} packet{'s' * (tally.bad > 1)} of {tally.packets} "
                       f"({tally.bad_seconds:.2f} s)")


def _check_length(path, what: str, got: float, declared: float, notes: list | None) -> None:
    """Compare the decoded length with the header's: a cut-off stream ends quietly in FFmpeg."""
    missing = declared - got
    if missing <= max(0.1, 0.02 * declared):  # codec padding and rounding
        return
    text = f"file is truncated: its {what} stops at {got:.2f} s of {declared:.2f} s"
    if missing > MAX_LOST_SHARE * declared:
        raise CorruptMediaError(path, text + " (incomplete download or copy?)")
    tell(path, notes, text + "; the rest was used")


def _decode_audio(c, stream, sample_rate: int, limit: int | None, tally: _Tally) -> np.ndarray:
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks, n = [], 0
    for frame in _decoded(c, stream, tally):
        # A damaged packet becomes silence of its length, so later audio keeps its time.
        outs = [np.zeros(int(round(frame.seconds * sample_rate)), np.float32)] if isinstance(frame, _Gap) else \
            [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
        chunks += outs
        n += sum(len(o) for o in outs)
        if limit and n >= limit:
            return np.concatenate(chunks)[:limit].astype(np.float32)
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def read_audio(path: str | os.PathLike, sample_rate: int = 16_000, max_seconds: float | None = None,
               notes: list | None = None) -> np.ndarray:
    """Decode the audio track (the first ``max_seconds`` of it, if given) as mono float32 at
    ``sample_rate`` (resampled if needed).

    Damaged packets are skipped (as silence) and a file cut short is read as far as it goes, as long
    as no more than :data:`MAX_LOST_SHARE` of the stream is lost — more raises CorruptMediaError.
    What was worked around goes into ``notes`` (a list), or is issued as a :class:`MediaWarning`.
    """
    import av

    limit = int(max_seconds * sample_rate) if max_seconds else None
    tally = _Tally()
    with _open(path) as c:
        if not c.streams.audio:
            raise NoAudioError(path, "no audio stream")
        stream = c.streams.audio[0]
        try:
            wave = _decode_audio(c, stream, sample_rate, limit, tally)
        except av.FFmpegError as exc:  # the container itself fails (the decoder's errors are skipped)
            raise _decode_error(path, "audio stream cannot be decoded", exc) from exc
        # MP4 headers give exact lengths to compare with (other formats' are estimates, e.g. VBR mp3).
        declared = _declared_seconds(stream) if "mp4" in c.format.name else 0.0
    if len(wave) == limit:  # stopped early on purpose: nothing to compare
        return wave
    if not len(wave) or tally.bad == tally.packets:
        raise CorruptMediaError(path, "audio stream decodes to no samples"
                                + (f": all {tally.packets} packets are damaged" if tally.bad else ""))
    # Truncation first: a cut-off file's last packet is damaged too, but "truncated" says what happened.
    _check_length(path, "audio", len(wave) / sample_rate, declared, notes)  # damaged packets count as present
    _check_loss(path, "audio", tally, notes)
    return wave


def read_frames(path: str | os.PathLike, indices=None, size: int | None = None, *, positions=None,
                notes: list | None = None) -> np.ndarray:
    """RGB uint8 frames (N, H, W, 3), upright (a rotation in the file's metadata is applied), by decord
    random access: those at ``indices`` (all when both are None), or at ``positions`` — fractions of
    the video's length in [0, 1], resolved against the frames that actually decode, so a header that
    over-claims frames (common in AVI) does not matter."""
    check_file(path)
    decord = _decord()
    frames = None
    with _quiet_stderr():
        try:
            vr = _video_reader(path, size)
        except CorruptMediaError as exc:  # PyAV decodes more kinds of damage (and stills named .mp4) than decord
            vr, failure = None, exc
        if vr is not None:
            idx = _frame_indices(path, len(vr), indices, positions)
            try:
                frames = vr.get_batch(idx).asnumpy()
            except (decord.DECORDError, RuntimeError) as exc:
                failure = exc
    if frames is None:  # decord applies the display matrix itself; PyAV's frames are as stored
        frames = _upright(_read_frames_fallback(path, indices, positions, size, failure, notes), _rotation(path))
    return frames


def _video_reader(path, size: int | None):
    decord = _decord()
    kw = {"width": size, "height": size} if size else {}
    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, **kw)
    except (decord.DECORDError, RuntimeError) as exc:
        with _open(path) as c:  # PyAV says what is wrong with a container more clearly than decord
            if not c.streams.video:
                raise NoVideoError(path, "no video stream") from exc
        raise _decode_error(path, "video stream cannot be opened", exc) from exc


def _frame_indices(path, n: int, indices, positions=None) -> list[int]:
    if n == 0:
        raise TooShortError(path, "video has no frames")
    if positions is not None:
        return [int(min(max(float(p), 0.0), 1.0) * (n - 1) + 0.5) for p in positions]  # 0.5 → n // 2, as before
    idx = list(range(n)) if indices is None else [int(i) for i in indices]
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise TooShortError(path, f"frame {bad[0]} requested but the video has {n} frames")
    return idx


def _read_frames_fallback(path, indices, positions, size: int | None, failure: BaseException,
                          notes: list | None) -> np.ndarray:
    # decord 0.6 mis-copies frames whose RGB row is not aligned the way it expects (e.g. 48 px
    # wide) and gives up on a damaged packet; PyAV decodes those, skipping what it cannot.
    decoded = []  # PyAV frames, converted to RGB only when picked (most callers want a few of many)
    _each_video_frame(path, notes, decoded.append, failure)
    if indices is not None and positions is None and max(indices, default=0) >= len(decoded):
        raise _decode_error(path, f"frame {max(indices)} cannot be decoded", failure)
    frames = [decoded[i].to_ndarray(format="rgb24") for i in _frame_indices(path, len(decoded), indices, positions)]
    if size:
        import cv2

        frames = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames]
    if not frames:  # no index asked for: none, shaped like the video's frames
        first = decoded[0]
        return np.empty((0, size or first.height, size or first.width, 3), np.uint8)
    return np.stack(frames)


def _decode_video(path, notes: list | None, failure: BaseException | None = None) -> np.ndarray:
    """Every decodable frame by sequential PyAV decoding, damaged packets skipped (within limits)."""
    frames = []
    _each_video_frame(path, notes, lambda f: frames.append(f.to_ndarray(format="rgb24")), failure)
    return np.stack(frames)


def _each_video_frame(path, notes: list | None, use, failure: BaseException | None = None) -> int:
    """Decode the video stream front to back, calling ``use(frame)`` on each decodable frame; the
    number of frames. Too many damaged packets, or a cut-off MP4, raise CorruptMediaError."""
    import av

    tally, n = _Tally(), 0
    with _open(path) as c:
        if not c.streams.video:
            raise NoVideoError(path, "no video stream")
        vs = c.streams.video[0]
        try:
            for frame in _decoded(c, vs, tally):
                if not isinstance(frame, _Gap):
                    use(frame)
                    n += 1
        except av.FFmpegError as exc:
            raise _decode_error(path, "video stream cannot be decoded", exc) from exc
        declared = vs.frames if "mp4" in c.format.name else 0  # AVI headers often over-claim; MP4's index is exact
        fps = float(vs.average_rate or 0)
    if not n:
        if isinstance(failure, MediaError):
            raise failure
        if failure is not None:
            raise _decode_error(path, "video stream cannot be decoded", failure)
        raise TooShortError(path, "video has no frames")
    if declared and fps:
        _check_length(path, "video", (n + tally.bad) / fps, declared / fps, notes)  # damaged packets count as present
    _check_loss(path, "video", tally, notes)
    return n


def read_frames_pyav(path: str | os.PathLike, notes: list | None = None) -> np.ndarray:
    """All frames as RGB uint8 by sequential PyAV decoding (the benchmark's reference decoder)."""
    return _decode_video(path, notes)


def _rotation(path) -> int:
    """Counter-clockwise quarter turns that make the video upright (from its display matrix; phones
    record portrait video as landscape frames plus this), 0 when none."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return 0
            _single_threaded(c.streams.video[0].codec_context)
            frame = next(c.decode(video=0), None)
    except av.FFmpegError:
        return 0
    return int(round(getattr(frame, "rotation", 0) or 0) // 90) % 4 if frame is not None else 0


def _upright(frames: np.ndarray, quarter_turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(frames, quarter_turns, axes=(1, 2))) if quarter_turns else frames


def check_decodes(path: str | os.PathLike, notes: list | None = None) -> dict:
    """Decode every audio sample and every frame of ``path`` (``avlab scan --deep``), holding one
    frame at a time: {"frames", "seconds"} decoded, or the MediaError that stops it."""
    wave = read_audio(path, notes=notes)
    return {"frames": _each_video_frame(path, notes, lambda f: f.to_ndarray(format="rgb24")),
            "seconds": round(len(wave) / 16_000, 3)}
