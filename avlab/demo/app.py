"""The Gradio demo page of a trained run: its task's tabs (from the task registry) and a run card.

Safe to share by construction: it binds 127.0.0.1 unless told otherwise and shares a public link
only when asked (optionally behind a login); uploads are limited in size, count and type and
decoded by our own readers, whose failures become a plain message in the page (never a
traceback); weights load from safetensors only; the server serves nothing but what the demo
produced and what was uploaded — Gradio's file route refuses every other path, the run folder
included — from a private temporary folder; requests go through a queue with a concurrency limit.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from avlab.tasks.run_card import card_markdown, card_metrics, card_status, headline_markdown, trained_on_markdown
from avlab.data.uploads import Limits
from avlab.tasks.demo_widgets import MediaFiles, friendly, quiet_refusals
from avlab.registry import TASKS
from avlab.runs import load_config


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    concurrency: int = 2  # requests computed at once; the rest wait in the queue
    queue_size: int = 64  # requests waiting beyond this are refused ("queue full")
    auth: tuple[str, str] | None = None


def task_tabs(run: str | os.PathLike, limits: Limits = Limits(), progress: bool = False, **options):
    """The run's task's demo tabs (an object with ``intro`` and ``render(files)``), from the registry."""
    cfg, _ = load_config(run)
    return TASKS.get(cfg.task).demo_tabs(Path(run), limits=limits, progress=progress, **options)


def build_app(run: str | os.PathLike, tabs):
    """The Blocks app (not launched): the task's tabs, then the run card."""
    import gradio as gr

    run = Path(run)
    cfg, _ = load_config(run)

    @friendly
    def run_card():
        return (f"{card_markdown(run)}\n\n{trained_on_markdown(run)}\n\n{headline_markdown(run)}", card_metrics(run),
                card_status(run))

    with gr.Blocks(title=f"avlab demo · {run.name}", delete_cache=(1800, 3600)) as app:
        gr.Markdown(f"## avlab · run `{run.name}` ({cfg.method}, task {cfg.task})\n{tabs.intro}")
        # Before any ranking: what the model learnt from and how good it measured (honest by default).
        gr.Markdown(f"{trained_on_markdown(run)}\n\n{headline_markdown(run)}", elem_id="avlab-honesty")
        tabs.render(MediaFiles())
        with gr.Tab("Run card"):
            md, metrics, status = run_card()
            card_md = gr.Markdown(md)
            card_table = gr.Dataframe(metrics, label="Protocol metrics", interactive=False)
            card_note = gr.Markdown(status)
            gr.Button("Reload from eval.json").click(run_card, [], [card_md, card_table, card_note], api_name="run_card")
    for block in app.blocks.values():  # every input, whichever task made it
        if isinstance(block, gr.components.Component):
            quiet_refusals(block)
    return app


def log_to_stderr(level: int = logging.INFO) -> None:
    """The server's log: avlab's own lines (one per refused request, tracebacks of our failures), one
    line each with a time; other libraries keep their defaults (no per-request HTTP lines)."""
    logger = logging.getLogger("avlab")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(level)


def launch(run: str | os.PathLike, tabs, options: ServeOptions = ServeOptions(), limits: Limits = Limits(),
           block: bool = True):
    """Serve the demo; returns the app (running in the background when ``block`` is False)."""
    run = Path(run)
    cfg, _ = load_config(run)
    app = build_app(run, tabs)
    app.queue(default_concurrency_limit=options.concurrency, max_size=options.queue_size)
    # Gradio serves only uploads and what the app produced (in its temp folder); block the run, the
    # data and the working directory as well, in case a future Gradio widens its defaults.
    temp = Path(os.environ.get("GRADIO_TEMP_DIR", tempfile.gettempdir())).resolve()
    blocked = [str(p) for p in (run.resolve(), Path(cfg.data).resolve(), Path.cwd().resolve())
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
