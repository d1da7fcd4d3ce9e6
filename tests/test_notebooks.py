"""Notebooks: committed clean and parameterised; executed by papermill, writing what they promise
and showing every figure, in the executed notebook and in its self-contained HTML export."""
import json
import re
from pathlib import Path

import pytest

from avlab.notebooks import NOTEBOOK_DIR, cell_figures, execute, html_figures, notebook_figures

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
ROOT = NOTEBOOK_DIR.parent


def assert_figures_shown(executed: Path) -> dict:
    """Every cell tagged ``figure`` shows at least one image, plotly figure or media element, and
    the HTML export carries them all, with plotly.js once (if any plotly) and nothing remote."""
    nb = json.loads(Path(executed).read_text())
    tagged = [c for c in nb["cells"] if "figure" in c.get("metadata", {}).get("tags", [])]
    assert tagged, f"{executed.name} has no figure cells"
    for cell in tagged:
        shown = cell_figures(cell)
        assert sum(shown.values()) > 0, f"{executed.name}: nothing shown by\n{''.join(cell['source'])[:300]}"
    total = notebook_figures(executed)
    html = html_figures(executed.with_suffix(".html"))
    assert html["img"] >= total["png"] + total["img"], (total, html)
    assert html["plotly"] == total["plotly"] and html["audio"] == total["audio"] and html["video"] == total["video"]
    assert html["plotly_js"] == (1 if total["plotly"] else 0), "plotly.js is embedded once, only where used"
    assert html["remote"] == 0, "the export must render offline (no CDN scripts or stylesheets)"
    return total


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_parameters(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "clear outputs"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code)


def test_committed_notebooks_are_the_generators_output():
    """tools/make_notebooks.py is the source: a notebook edited by hand and not ported back (or a
    generator edit not re-run) fails here."""
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "tools" / "make_notebooks.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert sorted(generator.NOTEBOOKS) == [p.name for p in NOTEBOOKS], "a notebook the generator does not write"
    for name, cells in generator.NOTEBOOKS.items():
        expected = nbformat.writes(generator.notebook(cells))
        assert json.loads((NOTEBOOK_DIR / name).read_text()) == json.loads(expected), \
            f"notebooks/{name} differs from tools/make_notebooks.py: re-run it (or port the edit back)"


def test_data_tour_executes_and_writes_its_artefacts(tiny_set, tmp_path):
    out = tmp_path / "tour"
    nb = execute("00_data_tour", out, {"data_dir": str(tiny_set), "out_dir": str(out), "n_identities": 3},
                 progress=False)
    assert nb.exists() and nb.with_suffix(".html").stat().st_size > 10_000
    shown = assert_figures_shown(nb)
    assert shown["png"] >= 4 and shown["video"] == 3 and shown["audio"] >= 6  # 6 speakers: faces + voices
    for name in ("identity_grid.png", "spectrogram.png", "lipsync.png", "attributes.png"):
        assert (out / name).stat().st_size > 1000, name
    import pandas as pd

    oracle = pd.read_csv(out / "oracle.csv")
    assert set(oracle.split) == {"seen_heard", "unseen_unheard"}
    assert (pd.read_csv(out / "lipsync.csv").r.mean()) > 0.4


def test_train_and_report_notebooks_execute_and_write_their_artefacts(tiny_set, tmp_path):
    runs = []
    for method in ("cid", "cmpc"):
        run = tmp_path / method
        execute("01_train", run, {"method": method, "data_dir": str(tiny_set), "out_dir": str(run), "epochs": 2,
                                  "batch_size": 8, "face_size": 48, "cluster_warmup_epochs": 1,
                                  "num_prototypes": [2, 3]}, progress=False)
        for name in ("01_train.ipynb", "01_train.html", "loss.png", "eval.json", "embeddings.npz",
                     "protocol_unseen_unheard.csv", "protocol.png", "model.safetensors"):
            assert (run / name).exists(), name
        assert assert_figures_shown(run / "01_train.ipynb")["plotly"] == 0  # light: one per sweep run
        runs.append(str(run))
    # Re-running the notebook on a finished run reuses it instead of failing.
    execute("01_train", tmp_path / "cid", {"method": "cid", "data_dir": str(tiny_set), "out_dir": runs[0],
                                           "epochs": 2, "batch_size": 8, "face_size": 48}, progress=False)
    execute("04_report", tmp_path, {"runs": runs, "out_dir": str(tmp_path)}, progress=False)
    assert assert_figures_shown(tmp_path / "04_report.ipynb")["plotly"] >= 4
    report = json.loads((tmp_path / "04_report.ipynb").read_text())
    bars = next(o["data"]["application/vnd.plotly.v1+json"] for c in report["cells"] for o in c.get("outputs", [])
                if "application/vnd.plotly.v1+json" in o.get("data", {}))
    assert {t["name"] for t in bars["data"]} == {"cid", "cmpc", "chance", "oracle"}
    assert all("error_y" in t for t in bars["data"] if t["type"] == "bar")  # confidence intervals
    import pandas as pd

    table = pd.read_csv(tmp_path / "report_unseen_unheard.csv", index_col=0)
    assert {"cid", "cmpc", "chance", "oracle"} <= set(table.columns)
    assert "matching_1to2/v2f/U" in table.index
    assert (tmp_path / "report_unseen_unheard.png").stat().st_size > 1000


def test_cluster_umap_and_evaluate_notebooks_execute(tiny_cmpc_run, tmp_path):
    out = tmp_path / "inspect"
    execute("02_cluster_inspection", out, {"run": str(tiny_cmpc_run), "out_dir": str(out), "n_downweighted": 3},
            progress=False)
    for name in ("cluster_sizes.csv", "cluster_sizes.png", "cluster_metrics.csv", "downweighted.csv"):
        assert (out / name).exists(), name
    shown = assert_figures_shown(out / "02_cluster_inspection.ipynb")
    assert shown["img"] >= 3 + 3 and shown["audio"] >= 3 + 3  # cluster galleries + down-weighted clips
    out = tmp_path / "umap"
    execute("03_embedding_umap", out, {"run": str(tiny_cmpc_run), "out_dir": str(out), "max_points": 200,
                                       "color_by": "modality"}, progress=False)
    fig = json.loads((out / "umap.json").read_text())
    assert {t["name"] for t in fig["data"]} >= {"voice", "face", "face prototype"}
    assert (out / "umap.html").stat().st_size > 100_000 and list((tiny_cmpc_run / "umap").glob("*.csv"))
    assert assert_figures_shown(out / "03_embedding_umap.ipynb")["plotly"] == 1
    out = tmp_path / "evaluate"
    execute("05_evaluate", out, {"runs": [str(tiny_cmpc_run)], "out_dir": str(out), "n_queries": 2, "top_k": 3},
            progress=False)
    for name in ("protocol_unseen_unheard.csv", "protocol_seen_heard.csv", "roc.png", "matching_1toN.png",
                 "retrieval_pr.png"):
        assert (out / name).exists(), name
    shown = assert_figures_shown(out / "05_evaluate.ipynb")
    assert shown["plotly"] == 5
    # v2f: 2 voice queries with 3 faces each; f2v: 2 face queries with 3 voices each
    assert shown["img"] == 2 * 3 + 2 and shown["audio"] == 2 + 2 * 3
    assert (tiny_cmpc_run / "tb" / "projector" / "projector_config.pbtxt").exists()


def test_sweep_summary_notebook_shows_its_figure(tmp_path):
    import pandas as pd

    pd.DataFrame({"run": ["000-method=cid", "001-method=cmpc"], "status": ["ok", "failed"], "method": ["cid", "cmpc"],
                  "matching_1to2/v2f/U": [0.61, None]}).to_csv(tmp_path / "sweep.csv", index=False)
    execute("06_sweep_summary", tmp_path, {"sweep_dir": str(tmp_path)}, progress=False)
    assert assert_figures_shown(tmp_path / "06_sweep_summary.ipynb")["png"] == 1
    assert (tmp_path / "sweep_summary.png").exists()


FORCED_BACKEND = re.compile(r"matplotlib\.use\(|switch_backend\(|MPLBACKEND|%matplotlib\s+agg", re.I)


def test_nothing_forces_a_non_interactive_backend():
    """Forcing Agg is what hid every figure: neither the notebooks, their generator, nor the library
    they call may pick a matplotlib backend (the demo server, which no notebook calls, is exempt)."""
    sources = [ROOT / "tools" / "make_notebooks.py", *NOTEBOOKS,
               *(p for p in (ROOT / "avlab").rglob("*.py") if "demo" not in p.relative_to(ROOT / "avlab").parts)]
    offenders = [str(p.relative_to(ROOT)) for p in sources if FORCED_BACKEND.search(p.read_text())]
    assert not offenders, f"these force a matplotlib backend: {offenders}"


def test_importing_the_notebook_modules_selects_no_backend():
    import subprocess
    import sys

    code = ("import matplotlib, matplotlib.pyplot\n"
            "import avlab.viz.clusters, avlab.viz.data_tour, avlab.viz.display, avlab.viz.evaluate, avlab.viz.media\n"
            "import avlab.viz.report, avlab.viz.sweep, avlab.viz.umap_view, avlab.tblog, avlab.notebooks\n"
            "assert matplotlib.rcParams._get_backend_or_none() is None, matplotlib.get_backend()\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "MPLBACKEND"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
