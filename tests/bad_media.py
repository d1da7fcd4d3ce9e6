"""A bad-media corpus made on the fly (no binaries are committed): good clips and every kind of
broken or unusual file the loaders, ``avlab scan``, training and the demo meet in the wild.

Used by tests/test_bad_corpus.py and benchmarks/bad_media.py. :data:`CASES` lists each case with
what should happen to it; :func:`make_corpus` writes the clips into a VoxCeleb2-layout folder
(``dev/mp4/<identity>/<video>/<utt>.mp4``) and the upload-only cases into ``uploads/``.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from avlab.data import media

FPS, SR, SIDE = 25, 16_000, 64


# --- makers --------------------------------------------------------------------------------------
def _frames(n: int, seed: int, side: int = SIDE) -> np.ndarray:
    """Smooth moving blobs (compress and decode like video, unlike noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:side, :side] / side
    base = rng.uniform(0, 1, 3)
    out = [np.stack([128 + 100 * np.sin(6 * (x + c * 0.3 + t / n) + base[c] * 6) * np.cos(4 * y) for c in range(3)], -1)
           for t in range(n)]
    return np.clip(out, 0, 255).astype(np.uint8)


def _voice(n: int, seed: int, sr: int = SR, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 250) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    wave = (wave + 0.02 * rng.standard_normal(n)).astype(np.float32)
    return np.repeat(wave[None], channels, 0)


def good_clip(path: Path, seed: int = 0, seconds: float = 1.2) -> None:
    n = int(seconds * FPS)
    media.write_mp4(path, _frames(n, seed), _voice(int(seconds * SR), seed)[0], fps=FPS, sample_rate=SR)


def _write(path: Path, frames=None, audio=None, sr: int = SR, layout: str = "mono", fmt: str = "mp4",
           vcodec: str = "libx264", acodec: str = "aac", pts_ms=None, rotation: float | None = None) -> None:
    """A clip with whichever streams are given; ``pts_ms`` gives each frame's time (variable rate)."""
    with av.open(str(path), "w", format=fmt) as out:
        v = a = None
        if frames is not None:
            v = out.add_stream(vcodec, rate=FPS)
            v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            if pts_ms is not None:
                v.time_base = Fraction(1, 1000)
        if audio is not None:
            a = out.add_stream(acodec, rate=sr, layout=layout)
        if v is not None:
            for k, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                if pts_ms is not None:
                    frame.pts, frame.time_base = int(pts_ms[k]), Fraction(1, 1000)
                for p in v.encode(frame):
                    out.mux(p)
            for p in v.encode():
                out.mux(p)
        if a is not None:
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32).reshape(1, -1) if layout == "mono"
                                            else np.ascontiguousarray(audio.T.reshape(1, -1), np.float32),
                                            format="flt", layout=layout)
            af.sample_rate, af.pts = sr, 0
            for p in a.encode(af):
                out.mux(p)
            for p in a.encode(None):
                out.mux(p)
    if rotation is not None:
        _rotate_mp4(path, rotation)


def _rotate_mp4(path: Path, degrees: float) -> None:
    """Set the video track's display matrix (how phones record portrait video) in its ``tkhd``."""
    data = bytearray(path.read_bytes())
    c, s = round(np.cos(np.radians(degrees))), round(np.sin(np.radians(degrees)))
    matrix = struct.pack(">9i", c << 16, s << 16, 0, -s << 16, c << 16, 0, 0, 0, 1 << 30)
    pos = data.find(b"tkhd")  # the first track is the video track (written first above)
    version = data[pos + 4]
    offset = pos + 4 + 4 + (32 if version else 20) + 8 + 8  # version/flags, times/id/duration, reserved, layer…
    data[offset:offset + 36] = matrix
    path.write_bytes(bytes(data))


def faststart_copy(src: Path, dst: Path) -> None:
    """``src`` remuxed with its index first, as streaming sites serve it: cut short, such a file still
    probes fine (the partial download a header check accepts) and fails only when decoded."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def cut(path: Path, share: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])


def garble_audio(path: Path, which=slice(1, None)) -> None:
    """Overwrite the selected audio packets with noise: the container and video stay fine."""
    data = bytearray(path.read_bytes())
    with av.open(str(path)) as c:
        spans = [(p.pos, p.size) for p in c.demux(c.streams.audio[0]) if p.size]
    rng = np.random.default_rng(0)
    for pos, size in spans[which]:
        data[pos:pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def overclaiming_avi(path: Path, factor: int = 4) -> None:
    """An AVI (named as the caller likes) whose headers claim ``factor`` times the frames it holds,
    like the cinepak file of issue 16 (444 claimed, 68 decoded)."""
    n = 20
    _write(path, _frames(n, 5), _voice(int(n / FPS * SR), 5)[0], fmt="avi", vcodec="mpeg4", acodec="pcm_s16le")
    data = bytearray(path.read_bytes())
    avih = data.find(b"avih")
    struct.pack_into("<I", data, avih + 8 + 16, n * factor)  # dwTotalFrames
    strh = data.find(b"strh")  # the video stream's header comes first
    struct.pack_into("<I", data, strh + 8 + 32, n * factor)  # dwLength
    path.write_bytes(bytes(data))


def huge_png(path: Path, side: int = 20_000) -> None:
    """A 20000×20000 PNG of a few hundred kB: a decompression bomb."""
    from PIL import Image

    Image.new("1", (side, side)).save(path, optimize=True)


# --- the cases -----------------------------------------------------------------------------------
def _mk_good(seed):
    return lambda p: good_clip(p, seed)


def _mk_partial(p: Path) -> None:
    good_clip(p.with_name(".src.mp4"), 11)
    faststart_copy(p.with_name(".src.mp4"), p)
    p.with_name(".src.mp4").unlink()
    cut(p, 0.3)


def _mk_cut(p: Path) -> None:
    good_clip(p, 12)
    cut(p, 0.3)


def _mk_one_bad_packet(p: Path) -> None:
    good_clip(p, 13)
    garble_audio(p, slice(10, 11))


def _mk_all_bad_packets(p: Path) -> None:
    good_clip(p, 14)
    garble_audio(p)


def _mk_link(p: Path) -> None:
    p.symlink_to(p.with_name("nowhere.mp4"))


def _png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_frames(1, 3)[0]).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], None]
    usable: bool  # a loader should train on it (possibly with a note)
    what: str  # one line for the table
    upload_only: bool = False  # not a clip of the dataset (a demo upload)
    suffix: str = ".mp4"


CASES: list[Case] = [
    Case("good", _mk_good(1), True, "a good H.264/AAC clip"),
    Case("empty", lambda p: p.write_bytes(b""), False, "0 bytes"),
    Case("random", lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), False, "random bytes"),
    Case("wrong_ext", lambda p: p.write_bytes(_png_bytes()), False, "a PNG image named .mp4"),
    Case("avi_as_mp4", lambda p: _write(p, _frames(30, 4), _voice(int(1.2 * SR), 4)[0], fmt="avi", vcodec="mpeg4",
                                        acodec="pcm_s16le"), True, "an AVI (MPEG-4 + PCM) named .mp4"),
    Case("no_audio", lambda p: _write(p, _frames(30, 6)), False, "video stream only"),
    Case("no_video", lambda p: _write(p, audio=_voice(int(1.2 * SR), 7)[0]), False, "audio stream only"),
    Case("too_short", lambda p: good_clip(p, 8, seconds=0.2), False, "0.2 s"),
    Case("silent", lambda p: _write(p, _frames(30, 9), np.zeros(int(1.2 * SR), np.float32)), True, "all-zero audio"),
    Case("audio_8k", lambda p: _write(p, _frames(30, 10), _voice(int(1.2 * 8000), 10, 8000)[0], sr=8000), True,
         "8 kHz mono audio"),
    Case("audio_48k_stereo", lambda p: _write(p, _frames(30, 11), _voice(int(1.2 * 48000), 11, 48000, 2).T,
                                              sr=48000, layout="stereo"), True, "48 kHz stereo audio"),
    Case("vfr", lambda p: _write(p, _frames(30, 12), _voice(int(1.2 * SR), 12)[0],
                                 pts_ms=np.cumsum([0] + [20, 60] * 14 + [40])), True, "variable frame rate (20/60 ms)"),
    Case("rotated", lambda p: _write(p, _frames(30, 13), _voice(int(1.2 * SR), 13)[0], rotation=90), True,
         "display matrix rotated 90°"),
    Case("folder", lambda p: p.mkdir(), False, "a folder named like a clip"),
    Case("dangling_link", _mk_link, False, "a link to nothing"),
    Case("partial_30", _mk_partial, False, "an index-first mp4 cut at 30 % (partial download)"),
    Case("cut_30", _mk_cut, False, "an mp4 cut at 30 % (index lost)"),
    Case("one_bad_audio_packet", _mk_one_bad_packet, True, "1 of its 20 AAC packets garbled"),
    Case("all_bad_audio_packets", _mk_all_bad_packets, False, "every AAC packet but the first garbled"),
    Case("overclaiming_header", lambda p: overclaiming_avi(p), True, "AVI named .mp4, header claims 80 of 20 frames"),
    Case("huge_image", huge_png, False, "a 20000×20000 PNG (decompression bomb)", upload_only=True, suffix=".png"),
    Case("wrong_type", lambda p: p.write_text("not media at all"), False, "a .txt file", upload_only=True,
         suffix=".txt"),
]


def case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def clip_rel(c: Case) -> str:
    """Where a case lives in the VoxCeleb layout: one identity per case, so a bad one never empties
    another's identity."""
    return f"dev/mp4/id_{c.name}/video0/00001{c.suffix}"


def make_corpus(root: str | os.PathLike, good_identities: int = 4, clips_per_identity: int = 3) -> dict[str, Path]:
    """Write the corpus under ``root``: ``good_identities`` × ``clips_per_identity`` good clips (so
    training has pairs of identities to contrast), every clip case, and ``uploads/`` with every
    case as a file a visitor might upload. Returns {case name: path of its upload copy}."""
    root = Path(root)
    for k in range(good_identities):
        for u in range(clips_per_identity):
            good_clip(root / f"dev/mp4/id_base{k}/video{u % 2}/{u + 1:05d}.mp4", seed=100 + 10 * k + u)
    uploads = root.parent / (root.name + "-uploads")
    uploads.mkdir(parents=True, exist_ok=True)
    out = {}
    for c in CASES:
        if not c.upload_only:
            path = root / clip_rel(c)
            path.parent.mkdir(parents=True, exist_ok=True)
            c.make(path)
        up = uploads / f"{c.name}{c.suffix}"
        c.make(up)
        out[c.name] = up
    return out
