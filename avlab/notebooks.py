"""Executing the parameterised notebooks with papermill, with an HTML export beside each."""
from __future__ import annotations

import os
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_path(name: str) -> Path:
    """``name`` may be a path or the stem of a notebook in ``notebooks/`` (e.g. ``00_data_tour``)."""
    p = Path(name)
    if p.exists():
        return p
    candidate = NOTEBOOK_DIR / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not candidate.exists():
        raise FileNotFoundError(f"notebook {name!r} not found (looked for {p} and {candidate})")
    return candidate


def export_html(executed: str | Path) -> Path:
    """Write ``<notebook>.html`` beside an executed notebook (figures embedded, no network needed)."""
    import nbformat
    from nbconvert import HTMLExporter

    executed = Path(executed)
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def execute(name: str, out_dir: str | Path, parameters: dict, html: bool = True, progress: bool = True) -> Path:
    """Run a notebook into ``out_dir`` with ``parameters``; the executed copy is kept even on error."""
    import papermill as pm

    src = notebook_path(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / src.name
    try:
        pm.execute_notebook(str(src), str(executed), parameters=parameters, kernel_name="python3",
                            progress_bar=progress, cwd=os.getcwd())
    finally:
        if html and executed.exists():
            export_html(executed)
    return executed
