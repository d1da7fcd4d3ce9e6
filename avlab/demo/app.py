"""The Gradio demo page of trained runs: each run's task's tabs (from the task registry) and its run
card; several runs (one per task, as `make run` leaves them) get a tab each.

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
    tabs = TASKS.get(cfg.task).demo_tabs(Path(run), limits=limits, progress=progress, **options)
    if tabs is None:
        raise ValueError(f"{run}: the {cfg.task} task has no demo")
    return tabs


def one_run_per_task(runs) -> list[Path]:
    """``runs`` as paths, refusing two of one task: their tabs would share names (and endpoints)."""
    runs, seen = [Path(r) for r in runs], {}
    for run in runs:
        task = load_config(run)[0].task
        if task in seen:
            raise ValueError(f"{seen[task]} and {run} are both {task} runs: a page shows one run per task "
                             f"(serve the other with a second `avlab demo --port …`)")
        seen[task] = run
    return runs


def _run_section(run: Path, tabs, files, card_api: str) -> None:
    """One run inside the current Blocks: its honesty header, its task's tabs, its run card."""
    import gradio as gr

    @friendly
    def run_card():
        return (f"{card_markdown(run)}\n\n{trained_on_markdown(run)}\n\n{headline_markdown(run)}", card_metrics(run),
                card_status(run))

    # Before any ranking: what the model learnt from and how good it measured (honest by default).
    honesty_id = "avlab-honesty" + card_api.removeprefix("run_card").replace("_", "-")
    gr.Markdown(f"{trained_on_markdown(run)}\n\n{headline_markdown(run)}", elem_id=honesty_id)
    tabs.render(files)
    with gr.Tab("Run card"):
        md, metrics, status = run_card()
        card_md = gr.Markdown(md)
        card_table = gr.Dataframe(metrics, label="Protocol metrics", interactive=False)
        card_note = gr.Markdown(status)
        gr.Button("Reload from eval.json").click(run_card, [], [card_md, card_table, card_note], api_name=card_api)


def _listed(runs, tabs) -> tuple[list[Path], list]:
    """(runs, tabs) as lists: one run (a path) with its tabs, or lists of both."""
    if isinstance(runs, (str, os.PathLike)):
        return [Path(runs)], [tabs]
    return [Path(r) for r in runs], list(tabs)


def build_app(runs, tabs):
    """The Blocks app (not launched). One run (a path): its task's tabs, then its run card. Several
    (lists of runs and of their tabs, one run per task): a tab per run holding those, each run card's
    endpoint named ``run_card_<task>`` (one run keeps ``run_card``)."""
    import gradio as gr

    runs, tabs = _listed(runs, tabs)
    runs = one_run_per_task(runs)
    configs = [load_config(r)[0] for r in runs]
    title = runs[0].name if len(runs) == 1 else ", ".join(r.name for r in runs)
    with gr.Blocks(title=f"avlab demo · {title}", delete_cache=(1800, 3600)) as app:
        if len(runs) == 1:
            gr.Markdown(f"## avlab · run `{runs[0].name}` ({configs[0].method}, task {configs[0].task})\n{tabs[0].intro}")
            _run_section(runs[0], tabs[0], MediaFiles(), "run_card")
        else:
            gr.Markdown(f"## avlab · {len(runs)} runs, one per task\nEach tab holds one run: its task's demo and "
                        "its run card.")
            for run, cfg, run_tabs in zip(runs, configs, tabs):
                with gr.Tab(f"{cfg.task} · {run.name}"):
                    gr.Markdown(f"### run `{run.name}` ({cfg.method}, task {cfg.task})\n{run_tabs.intro}")
                    # Media caches per run: two tasks may name their media alike.
                    _run_section(run, run_tabs, MediaFiles(), f"run_card_{cfg.task.replace('-', '_')}")
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


def launch(runs, tabs, options: ServeOptions = ServeOptions(), limits: Limits = Limits(), block: bool = True):
    """Serve the demo of a run (or of a list of runs with their tabs, as :func:`build_app` takes them);
    returns the app (running in the background when ``block`` is False)."""
    runs, tabs = _listed(runs, tabs)
    app = build_app(runs, tabs)
    app.queue(default_concurrency_limit=options.concurrency, max_size=options.queue_size)
    # Gradio serves only uploads and what the app produced (in its temp folder); block the runs, their
    # data and the working directory as well, in case a future Gradio widens its defaults.
    temp = Path(os.environ.get("GRADIO_TEMP_DIR", tempfile.gettempdir())).resolve()
    private = {p for r in runs for p in (r.resolve(), Path(load_config(r)[0].data).resolve())} | {Path.cwd().resolve()}
    blocked = sorted(str(p) for p in private if not temp.is_relative_to(p))
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
