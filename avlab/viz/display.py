"""Showing figures in notebooks so they appear in JupyterLab, in papermill runs and in HTML exports.

Two rules keep every figure visible and every export self-contained:

* matplotlib figures are rendered to PNG bytes here and displayed as an image (:func:`show`), so
  they show whatever matplotlib backend the kernel runs (inline, or a headless default, …)
  and are closed afterwards, so the inline backend does not show them a second time;
* plotly figures go through an offline renderer (:func:`setup`): JupyterLab renders the plotly
  mimetype, the HTML export the ``text/html`` part, which refers to one copy of plotly.js that
  :func:`setup` embeds once per notebook (not per figure) and that loads no MathJax from a CDN.

Nothing here selects a matplotlib backend: forcing ``Agg`` is what hid every figure before
(tests/test_notebooks.py checks that no notebook or library module does).
"""
from __future__ import annotations

import io
from pathlib import Path

RENDERER = "avlab_offline"
_activated = False  # plotly.js goes into the notebook once per kernel


def _renderer_class():
    from plotly.io._base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        """plotly's notebook renderer with plotly.js embedded once and no MathJax CDN script."""

        def activate(self):
            global _activated
            if not _activated:
                _activated = True
                super().activate()

        def to_mimebundle(self, fig_dict):
            from plotly.io import to_html

            html = to_html(fig_dict, config=self.config, include_plotlyjs=False, include_mathjax=False,
                           full_html=False, default_width="100%", default_height=460, validate=False)
            return {"text/html": html}

    return OfflineNotebookRenderer


def setup() -> None:
    """Call once at the top of a notebook: embeds plotly.js (offline) and makes plotly figures
    render both in JupyterLab (mimetype) and in the HTML export (HTML + the embedded JS)."""
    import plotly.io as pio

    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = _renderer_class()(connected=False)
    pio.renderers[RENDERER].activate()  # the JS lands in the calling cell's output
    pio.renderers.default = f"plotly_mimetype+{RENDERER}"


def png_bytes(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show(fig, path: str | Path | None = None, dpi: int = 110, display: bool = True):
    """Save a matplotlib figure to ``path`` (if given), display it as a PNG and close it.

    ``display=False`` only writes the file (a PNG twin of a figure shown interactively).
    """
    import matplotlib.pyplot as plt

    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    if display:
        from IPython.display import Image
        from IPython.display import display as ipy_display

        ipy_display(Image(data=png_bytes(fig, dpi)))
    plt.close(fig)


def html(markup: str) -> None:
    """Display raw HTML (galleries, players) in the notebook and its export."""
    from IPython.display import HTML, display

    display(HTML(markup))
