"""Building blocks for task demo tabs: one-line user errors, and output media written safely."""
from __future__ import annotations

import atexit
import functools
import hashlib
import html
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from avlab.data.uploads import UploadError

log = logging.getLogger("avlab.demo")


def friendly(fn):
    """Turn any failure into a one-line message in the page: the user's fault says what to fix (and
    is one line in the server log), ours says to look at the server log (where the traceback goes)."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except gr.Error:
            raise
        except UploadError as exc:
            log.info("request refused: %s", exc)  # an expected user error: one line, no traceback
            # Gradio renders the message as HTML and it may quote a file name: escape it.
            raise gr.Error(html.escape(str(exc), quote=False), print_exception=False) from None
        except Exception:
            log.exception("demo request failed")
            raise gr.Error("the server failed on this request (details are in its log); try other media",
                           print_exception=False) from None

    return wrapper


def quiet_refusals(component):
    """Make Gradio's own refusal of an input (a wrong file type, checked in the component's
    ``preprocess`` before our handler runs) one line in the server log instead of a traceback: Gradio
    prints the traceback of every ``gr.Error`` whose ``print_exception`` is set, and sets it there."""
    import gradio as gr

    preprocess = component.preprocess

    def refusing_quietly(*args, **kwargs):
        try:
            return preprocess(*args, **kwargs)
        except gr.Error as exc:
            exc.print_exception = False
            log.info("request refused: %s", exc.message)
            raise

    component.preprocess = refusing_quietly  # on this instance only: the class stays Gradio's
    return component


def upload_paths(files) -> list[str]:
    """Upload payloads (None, a path, a list of paths, or file objects) as a list of paths."""
    if not files:
        return []
    files = files if isinstance(files, list) else [files]
    return [f if isinstance(f, str) else f.name for f in files]


class MediaFiles:
    """Output media written once each, atomically, under a name that is the hash of the content.

    Gradio re-encodes an array output into its cache on every request by truncating and rewriting
    the same content-addressed file, so two concurrent requests returning the same face (the test
    gallery is in every answer) can serve a half-written file ("Too little data for declared
    Content-Length"). A finished file returned by path is copied atomically and reused instead.
    """

    def __init__(self, folder: str | os.PathLike | None = None):
        if folder is None:
            folder = tempfile.mkdtemp(prefix="avlab-demo-media-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
        self.folder = Path(folder)
        self._known: dict[tuple[str, str], str] = {}  # (test clip, kind) → file: encoded once

    # An item is anything with ``key`` (a test clip's id, None for uploads), ``face`` (RGB uint8)
    # and ``wave`` (mono float) attributes.

    def _write(self, data: bytes, suffix: str) -> str:
        path = self.folder / f"{hashlib.sha1(data).hexdigest()[:20]}{suffix}"
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return str(path)

    def _cached(self, key: str | None, kind: str, encode) -> str:
        if key is None:  # an upload: encoded for this answer only
            return encode()
        if (key, kind) not in self._known:
            self._known[key, kind] = encode()
        return self._known[key, kind]

    def picture(self, rgb: np.ndarray, key: str | None, kind: str = "picture") -> str:
        """A PNG of any RGB (or grey) uint8 array, encoded once per (test-clip ``key``, ``kind``)."""
        from PIL import Image

        def encode():
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
            return self._write(buf.getvalue(), ".png")

        return self._cached(key, kind, encode)

    def image(self, item) -> str | None:
        """A PNG of the face the encoder saw."""
        return None if item.face is None else self.picture(item.face, item.key, "face")

    def audio(self, item, sample_rate: int) -> str | None:
        """A 16-bit WAV of the item's voice."""
        if item.wave is None:
            return None
        import soundfile as sf

        def encode():
            buf = io.BytesIO()
            sf.write(buf, np.clip(item.wave, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
            return self._write(buf.getvalue(), ".wav")

        return self._cached(item.key, "voice", encode)
