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


# JupyterLab's export template, less every script it would fetch from a CDN (require.js, MathJax,
# mermaid, the widget manager), so an export renders with no network. Figures need none of them:
# images are data URIs, plotly figures use the plotly.js that avlab.viz.display.setup() embeds once.
# Widgets cannot render in a static page anyway; notebooks show a static equivalent beside each.
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block data_widget_view -%}
<div class="jp-OutputArea-output"><pre>(a live widget: open the notebook in JupyterLab to use it)</pre></div>
{%- endblock data_widget_view -%}
"""


def html_exporter():
    """nbconvert's lab HTML exporter with :data:`OFFLINE_TEMPLATE`."""
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", template_file="avlab_offline.html.j2",
                        extra_loaders=[jinja2.DictLoader({"avlab_offline.html.j2": OFFLINE_TEMPLATE})])


def export_html(executed: str | Path) -> Path:
    """Write ``<notebook>.html`` beside an executed notebook (figures embedded, no network needed)."""
    import nbformat

    executed = Path(executed)
    nb = nbformat.read(executed, as_version=4)
    nb.metadata.pop("widgets", None)  # widget state is dead weight without the (CDN) widget manager
    body, _ = html_exporter().from_notebook_node(nb)
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


PLOTLY_MIME = "application/vnd.plotly.v1+json"
MEDIA_TAGS = {"img": "<img", "audio": "<audio", "video": "<video", "plotly": 'class="plotly-graph-div"'}


def cell_figures(cell: dict) -> dict[str, int]:
    """What a code cell shows: PNG images, plotly figures and media elements in HTML outputs."""
    counts = dict.fromkeys(("png", "plotly", "img", "audio", "video"), 0)
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        counts["png"] += "image/png" in data
        counts["plotly"] += PLOTLY_MIME in data
        markup = data.get("text/html", "")
        markup = "".join(markup) if isinstance(markup, list) else markup
        for key in ("img", "audio", "video"):
            counts[key] += markup.count(MEDIA_TAGS[key])
    return counts


def notebook_figures(executed: str | Path) -> dict[str, int]:
    """:func:`cell_figures` summed over an executed notebook."""
    import json

    total = dict.fromkeys(("png", "plotly", "img", "audio", "video"), 0)
    for cell in json.loads(Path(executed).read_text())["cells"]:
        for k, v in cell_figures(cell).items():
            total[k] += v
    return total


def html_figures(html: str | Path) -> dict[str, int]:
    """What an HTML export shows: ``<img>``, ``<audio>``, ``<video>``, plotly figures, copies of
    plotly.js, and scripts or stylesheets it would fetch over the network."""
    import re

    text = Path(html).read_text(encoding="utf-8")
    counts = {k: text.count(tag) for k, tag in MEDIA_TAGS.items()}
    counts["plotly_js"] = len(re.findall(r"\* plotly\.js v\d", text))
    counts["remote"] = len(re.findall(r"<(?:script|link)[^>]+(?:src|href)=[\"']?(?:https?:)?//", text))
    counts["bytes"] = len(text.encode("utf-8"))
    return counts


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
