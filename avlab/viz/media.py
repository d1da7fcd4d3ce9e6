"""Inline media for notebooks: base64-embedded ``<img>``, ``<audio>`` and ``<video>`` HTML.

Everything is embedded in the markup (``data:`` URIs), so a notebook's HTML export plays and
shows it with no server and no network. Sizes are kept small on purpose — thumbnails, short
clips — and every gallery takes a count, because each item travels in the export.
"""
from __future__ import annotations

import base64
import html as html_lib
import io
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- images ---------------------------------------------------------------------------------------
def png_bytes(image: np.ndarray, size: int | None = None) -> bytes:
    """An RGB uint8 (H, W, 3) image (optionally resized to ``size``²) as PNG bytes."""
    import cv2

    img = np.ascontiguousarray(image[..., ::-1])  # OpenCV writes BGR
    if size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return buf.tobytes()


def img_html(image: np.ndarray | bytes, width: int = 96, title: str = "") -> str:
    """An ``<img>`` of an RGB array or of PNG bytes."""
    data = image if isinstance(image, bytes) else png_bytes(image)
    return (f'<img src="data:image/png;base64,{_b64(data)}" width="{width}" '
            f'title="{html_lib.escape(title)}" style="image-rendering:auto">')


def clip_frame(root: str | Path, rel_path: str, frame: int | None = None) -> np.ndarray:
    """RGB frame ``frame`` of a clip (the middle one by default)."""
    from avlab.data import media

    path = Path(root) / rel_path
    if frame is None:
        frame = media.probe(path).n_frames // 2
    return media.read_frames(path, [frame])[0]


def thumbnail_png(root: str | Path, rel_path: str, size: int = 96) -> bytes:
    """The clip's middle frame as ``size``² PNG bytes."""
    return png_bytes(clip_frame(root, rel_path), size)


# --- audio ----------------------------------------------------------------------------------------
def wav_bytes(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A mono float waveform as 16-bit WAV bytes."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(wave, dtype=np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def audio_html(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, width: int = 160) -> str:
    """An ``<audio controls>`` player of a waveform."""
    return (f'<audio controls preload="none" style="width:{width}px" '
            f'src="data:audio/wav;base64,{_b64(wav_bytes(wave, sample_rate))}"></audio>')


def clip_audio_html(root: str | Path, rel_path: str, max_seconds: float | None = 4.0, width: int = 160) -> str:
    """A player of the clip's sound (the first ``max_seconds``): its own AAC track remuxed into an
    m4a (a quarter of a WAV's size, plays in every browser), or decoded to WAV for other codecs."""
    path = Path(root) / rel_path
    try:
        data = trimmed_mp4(path, max_seconds or float("inf"), kinds=("audio",), codecs=("aac",))
        return (f'<audio controls preload="none" style="width:{width}px" '
                f'src="data:audio/mp4;base64,{_b64(data)}"></audio>')
    except (ValueError, OSError):
        from avlab.data import media

        return audio_html(media.read_audio(path, SAMPLE_RATE, max_seconds=max_seconds), width=width)


# --- video ----------------------------------------------------------------------------------------
def trimmed_mp4(path: str | Path, max_seconds: float, kinds=("video", "audio"), codecs=None) -> bytes:
    """The first ``max_seconds`` of an mp4's ``kinds`` of streams, remuxed without re-encoding
    (fast, same codecs). ``codecs``: refuse (ValueError) streams in other codecs."""
    import av

    out = io.BytesIO()
    with av.open(str(path)) as src:
        chosen = [s for s in src.streams if s.type in kinds]
        if not chosen or (codecs and any(s.codec_context.name not in codecs for s in chosen)):
            raise ValueError(f"{path}: no {'/'.join(kinds)} stream in {codecs or 'any codec'}")
        with av.open(out, "w", format="mp4") as dst:
            streams = {s.index: dst.add_stream_from_template(s) for s in chosen}
            for packet in src.demux(*chosen):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                if packet.pts is not None and float(packet.pts * packet.time_base) > max_seconds:
                    continue
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    return out.getvalue()


def video_html(path: str | Path, width: int = 160, max_seconds: float = 3.0, max_bytes: int = 300_000,
               poster: bool = True) -> str:
    """An HTML5 ``<video controls>`` of an mp4 clip: the file itself when it is small, else its
    first ``max_seconds`` (remuxed, so H.264/AAC clips play in any browser); ``poster`` shows the
    middle frame before it plays (a page, or a browser that cannot decode it, still shows the face)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) > max_bytes:
        data = trimmed_mp4(path, max_seconds)
    still = ""
    if poster:
        still = f' poster="data:image/png;base64,{_b64(png_bytes(clip_frame(path.parent, path.name), width))}"'
    return (f'<video controls preload="metadata" width="{width}"{still} '
            f'src="data:video/mp4;base64,{_b64(data)}"></video>')


# --- galleries ------------------------------------------------------------------------------------
def card(parts: list[str], caption: str = "", width: int = 170) -> str:
    """Media stacked over a caption (already-escaped HTML pieces)."""
    body = "<br>".join(parts)
    return (f'<div style="display:inline-block;vertical-align:top;margin:4px;width:{width}px;'
            f'text-align:center;font-size:11px;white-space:normal">{body}<br>{caption}</div>')


def gallery(cards: list[str], title: str = "", row: bool = False) -> str:
    """Cards side by side, wrapping; ``row``: one scrollable row (a query and its matches stay
    side by side however narrow the page)."""
    head = f"<p><b>{html_lib.escape(title)}</b></p>" if title else ""
    style = ' style="white-space:nowrap;overflow-x:auto"' if row else ""
    return f"{head}<div{style}>{''.join(cards)}</div>"


def label(value) -> str:
    """A compact, escaped caption value (3 significant digits for floats)."""
    return html_lib.escape(f"{value:.3g}" if isinstance(value, float) else str(value))


def clip_cards(root: str | Path, rows, extra: tuple[str, ...] = (), face: bool = True, voice: bool = True,
               video: bool = False, thumb: int = 96, audio_seconds: float = 4.0) -> list[str]:
    """One card per row of a clip table (columns ``path``, ``identity`` and ``extra``): the face
    thumbnail, a voice player and/or the clip as video, captioned with identity and ``extra``."""
    cards = []
    for r in rows.itertuples():
        parts = []
        if video:
            parts.append(video_html(Path(root) / r.path, width=thumb + 64))
        elif face:
            parts.append(img_html(thumbnail_png(root, r.path, thumb), thumb, r.path))
        if voice and not video:  # a video carries its own sound
            parts.append(clip_audio_html(root, r.path, audio_seconds))
        caption = " ".join([label(r.identity)] + [f"{k}={label(getattr(r, k))}" for k in extra])
        cards.append(card(parts, caption))
    return cards
