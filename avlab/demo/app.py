"""The Gradio demo: voice → face and face → voice matching with a trained run, and its card.

Safe to share by construction: it binds 127.0.0.1 unless told otherwise and shares a public link
only when asked (optionally behind a login); uploads are limited in size, count and type and
decoded by our own readers, whose failures become a plain message in the page (never a
traceback); weights load from safetensors only; the server serves nothing but what the demo
produced and what was uploaded — Gradio's file route refuses every other path, the run folder
included — from a private temporary folder; requests go through a queue with a concurrency limit.
"""
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avlab.demo.card import card_markdown, card_metrics, card_status
from avlab.demo.engine import Item, Matcher, Ranking
from avlab.demo.inputs import FACE_EXTS, VOICE_EXTS, Limits, UploadError

log = logging.getLogger("avlab.demo")
TOP_VOICES = 5  # audio players in the face → voice tab
RANK_HEADERS = ["rank", "name", "identity", "score", "true match"]


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    concurrency: int = 2  # requests computed at once; the rest wait in the queue
    queue_size: int = 64  # requests waiting beyond this are refused ("queue full")
    auth: tuple[str, str] | None = None


def _friendly(fn):
    """Turn any failure into a one-line message in the page: the user's fault says what to fix,
    ours says to look at the server log (where the traceback goes)."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except gr.Error:
            raise
        except UploadError as exc:
            # Gradio renders the message as HTML and it may quote a file name: escape it.
            raise gr.Error(html.escape(str(exc), quote=False), print_exception=False) from None
        except Exception:
            log.exception("demo request failed")
            raise gr.Error("the server failed on this request (details are in its log); try other media",
                           print_exception=False) from None

    return wrapper


def _paths(files) -> list[str]:
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

    def _write(self, data: bytes, suffix: str) -> str:
        path = self.folder / f"{hashlib.sha1(data).hexdigest()[:20]}{suffix}"
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return str(path)

    def _cached(self, item: Item, kind: str, encode) -> str:
        if item.key is None:  # an upload: encoded for this answer only
            return encode()
        if (item.key, kind) not in self._known:
            self._known[item.key, kind] = encode()
        return self._known[item.key, kind]

    def image(self, item: Item) -> str | None:
        """A PNG of the face the encoder saw."""
        if item.face is None:
            return None
        from PIL import Image

        def encode():
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(item.face)).save(buf, format="PNG")
            return self._write(buf.getvalue(), ".png")

        return self._cached(item, "face", encode)

    def audio(self, item: Item, sample_rate: int) -> str | None:
        """A 16-bit WAV of the item's voice."""
        if item.wave is None:
            return None
        import soundfile as sf

        def encode():
            buf = io.BytesIO()
            sf.write(buf, np.clip(item.wave, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
            return self._write(buf.getvalue(), ".wav")

        return self._cached(item, "voice", encode)


def _caption(rank: int, ranking: Ranking, k: int) -> str:
    """"1. 0.742 ✓ · name": rank, score and mark first, so a narrow tile still shows them."""
    item, score = ranking.items[k], ranking.scores[k]
    mark = " ✓" if ranking.is_match(item) else ""
    return f"{rank}. {score:.3f}{mark} · {item.name}"


def _summary(ranking: Ranking) -> str:
    lines = []
    if ranking.query.identity:
        where = ranking.true_rank
        lines.append(f"**True match ranked {where} of {len(ranking.items)}.**" if where else
                     "The query's identity is not in this gallery.")
    else:
        lines.append("The true match is unknown for uploads.")
    lines += [f"- {n}" for n in ranking.notes]
    return "\n".join(lines)


def build_app(matcher: Matcher):
    """The Blocks app (not launched): tabs Voice → Face, Face → Voice and Run card."""
    import gradio as gr

    sr = matcher.mel.sample_rate
    files = MediaFiles()
    choices = matcher.test_clip_choices() if matcher.ds is not None else []
    first = choices[0][1] if choices else None
    no_test = f"*{matcher.missing_test_set}*" if matcher.missing_test_set else ""

    @_friendly
    def voice_to_face(test_clip, voice, faces):
        ranking = matcher.voice_to_face(voice or None, test_clip, _paths(faces))
        gallery = [(files.image(it), _caption(r, ranking, r - 1)) for r, it in enumerate(ranking.items, 1)]
        return files.audio(ranking.query, sr), gallery, ranking.rows(), _summary(ranking)

    @_friendly
    def face_to_voice(test_clip, face, voices):
        ranking = matcher.face_to_voice(_paths(face)[0] if face else None, test_clip, _paths(voices))
        players = []
        for k in range(TOP_VOICES):
            if k < len(ranking.items):
                players.append(gr.update(value=files.audio(ranking.items[k], sr),
                                         label=_caption(k + 1, ranking, k), visible=True))
            else:
                players.append(gr.update(value=None, visible=False))
        return (files.image(ranking.query), ranking.rows(), *players, _summary(ranking))

    @_friendly
    def run_card():
        return card_markdown(matcher.run), card_metrics(matcher.run), card_status(matcher.run)

    face_types, voice_types = list(FACE_EXTS), list(VOICE_EXTS)
    with gr.Blocks(title=f"avlab demo · {matcher.run.name}", delete_cache=(1800, 3600)) as app:
        gr.Markdown(f"## avlab · voice–face matching with run `{matcher.run.name}` ({matcher.cfg.method})\n"
                    f"Test clips are of identities the model never saw in training. Uploads go through the "
                    f"training preprocessing (face frame, log-mel). {no_test}")
        with gr.Tab("Voice → Face"):
            with gr.Row():
                with gr.Column(scale=1):
                    vf_clip = gr.Dropdown(choices, value=first, label="Voice: a test clip")
                    vf_voice = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                        label="…or your own voice (upload or record; used instead of the test clip)")
                    vf_faces = gr.File(file_count="multiple", file_types=face_types,
                                       label="Faces to rank: images or videos (empty: the test gallery)")
                    vf_go = gr.Button("Rank faces for this voice", variant="primary")
                with gr.Column(scale=2):
                    vf_heard = gr.Audio(label="The voice used", interactive=False)
                    vf_gallery = gr.Gallery(label="Faces, best match first", columns=6, object_fit="contain",
                                            height="auto")
                    vf_table = gr.Dataframe(headers=RANK_HEADERS, label="Ranking (cosine similarity)",
                                            interactive=False)
                    vf_notes = gr.Markdown()
            vf_go.click(voice_to_face, [vf_clip, vf_voice, vf_faces], [vf_heard, vf_gallery, vf_table, vf_notes],
                        api_name="voice_to_face")
        with gr.Tab("Face → Voice"):
            with gr.Row():
                with gr.Column(scale=1):
                    fv_clip = gr.Dropdown(choices, value=first, label="Face: a test clip")
                    fv_face = gr.File(file_types=face_types,
                                      label="…or your own face: an image or a video (used instead of the test clip)")
                    fv_voices = gr.File(file_count="multiple", file_types=voice_types,
                                        label="Voices to rank: audio or video files (empty: the test gallery)")
                    fv_go = gr.Button("Rank voices for this face", variant="primary")
                with gr.Column(scale=2):
                    fv_seen = gr.Image(label="The face the model saw", interactive=False, height=160)
                    fv_table = gr.Dataframe(headers=RANK_HEADERS, label="Ranking (cosine similarity)",
                                            interactive=False)
                    fv_players = [gr.Audio(label=f"{k + 1}.", interactive=False, visible=False)
                                  for k in range(TOP_VOICES)]
                    fv_notes = gr.Markdown()
            fv_go.click(face_to_voice, [fv_clip, fv_face, fv_voices], [fv_seen, fv_table, *fv_players, fv_notes],
                        api_name="face_to_voice")
        with gr.Tab("Run card"):
            md, metrics, status = run_card()
            card_md = gr.Markdown(md)
            card_table = gr.Dataframe(metrics, label="Protocol metrics", interactive=False)
            card_note = gr.Markdown(status)
            gr.Button("Reload from eval.json").click(run_card, [], [card_md, card_table, card_note], api_name="run_card")
    return app


def launch(matcher: Matcher, options: ServeOptions = ServeOptions(), limits: Limits = Limits(),
           block: bool = True):
    """Serve the demo; returns the app (running in the background when ``block`` is False)."""
    app = build_app(matcher)
    app.queue(default_concurrency_limit=options.concurrency, max_size=options.queue_size)
    # Gradio serves only uploads and what the app produced (in its temp folder); block the run, the
    # data and the working directory as well, in case a future Gradio widens its defaults.
    temp = Path(os.environ.get("GRADIO_TEMP_DIR", tempfile.gettempdir())).resolve()
    blocked = [str(p) for p in (matcher.run.resolve(), Path(matcher.cfg.data).resolve(), Path.cwd().resolve())
               if not temp.is_relative_to(p)]
    app.launch(server_name=options.host, server_port=options.port, share=options.share, auth=options.auth,
               max_file_size=limits.max_bytes, allowed_paths=[], blocked_paths=blocked, show_error=False,
               ssr_mode=False, prevent_thread_lock=not block, quiet=not block, inbrowser=False)
    return app


def private_temp_dir() -> str:
    """A fresh 0700 folder for uploads and produced media (set as GRADIO_TEMP_DIR before Gradio loads)."""
    return tempfile.mkdtemp(prefix="avlab-demo-")


def prepare_environment() -> None:
    """Gradio reads these at import: no telemetry, and uploads in a private folder of our own."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_TEMP_DIR", private_temp_dir())
