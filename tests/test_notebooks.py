"""Notebooks: committed clean and parameterised; executed by papermill, writing what they promise."""
import json

import pytest

from avlab.notebooks import NOTEBOOK_DIR, execute

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_parameters(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "clear outputs"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code)


def test_data_tour_executes_and_writes_its_artefacts(tiny_set, tmp_path):
    out = tmp_path / "tour"
    nb = execute("00_data_tour", out, {"data_dir": str(tiny_set), "out_dir": str(out), "n_identities": 3},
                 progress=False)
    assert nb.exists() and nb.with_suffix(".html").stat().st_size > 10_000
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
                     "protocol_unseen_unheard.csv", "model.safetensors"):
            assert (run / name).exists(), name
        runs.append(str(run))
    # Re-running the notebook on a finished run reuses it instead of failing.
    execute("01_train", tmp_path / "cid", {"method": "cid", "data_dir": str(tiny_set), "out_dir": runs[0],
                                           "epochs": 2, "batch_size": 8, "face_size": 48}, progress=False)
    execute("04_report", tmp_path, {"runs": runs, "out_dir": str(tmp_path)}, progress=False)
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
    out = tmp_path / "umap"
    execute("03_embedding_umap", out, {"run": str(tiny_cmpc_run), "out_dir": str(out), "max_points": 200,
                                       "color_by": "modality"}, progress=False)
    fig = json.loads((out / "umap.json").read_text())
    assert {t["name"] for t in fig["data"]} >= {"voice", "face", "face prototype"}
    assert (out / "umap.html").stat().st_size > 100_000 and list((tiny_cmpc_run / "umap").glob("*.csv"))
    out = tmp_path / "evaluate"
    execute("05_evaluate", out, {"runs": [str(tiny_cmpc_run)], "out_dir": str(out)}, progress=False)
    for name in ("protocol_unseen_unheard.csv", "protocol_seen_heard.csv", "roc.png", "matching_1toN.png",
                 "retrieval_pr.png"):
        assert (out / name).exists(), name
