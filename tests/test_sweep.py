"""Papermill sweeps: a failing run does not stop the others; guards stop runaway runs."""
import json

import pytest

from avlab.cli import main as cli
from avlab.notebooks import execute
from avlab.sweep import load_grid, run_name, run_sweep


def test_grid_expansion_and_bad_grids(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("fixed: {epochs: 1}\ngrid: {method: [cid, cmpc], seed: [0, 1, 2]}\n")
    fixed, points = load_grid(g)
    assert fixed == {"epochs": 1} and len(points) == 6 and points[0] == {"method": "cid", "seed": 0}
    assert run_name(3, {"method": "cmpc", "lr": 0.001}) == "003-method=cmpc,lr=0.001"
    assert run_name(0, {"p": "a/b c"}) == "000-p=a_b_c"
    g.write_text("grid: {method: cid}\n")
    with pytest.raises(ValueError, match="non-empty list"):
        load_grid(g)
    g.write_text("grid: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_grid(g)


def test_a_sweep_with_one_failing_run_completes_the_others(tiny_set, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(json.dumps({
        "fixed": {"data_dir": str(tiny_set), "epochs": 1, "batch_size": 8, "face_size": 48,
                  "cluster_warmup_epochs": 0, "num_prototypes": [2, 3]},
        "grid": {"method": ["cid", "cmpc", "bogus", "supervised"]}}))  # JSON is YAML
    out = tmp_path / "sweep"
    table = run_sweep("01_train", grid, out, workers=2, progress=False)
    assert sorted(table.status) == ["failed", "ok", "ok", "ok"]
    failed = table[table.status == "failed"].iloc[0]
    assert failed.method == "bogus" and "unknown method 'bogus'" in failed.error
    bad_nb = out / failed.run / "01_train.ipynb"
    assert bad_nb.exists() and (out / failed.run / "01_train.html").exists()  # kept, with the error
    ok = table[table.status == "ok"]
    assert ok["matching_1to2/v2f/U"].notna().all()
    assert (out / "sweep.csv").exists()
    execute("06_sweep_summary", out, {"sweep_dir": str(out), "metric": "matching_1to2/v2f/U",
                                      "group_by": "method"}, progress=False)
    assert (out / "sweep_summary.png").exists() and (out / "sweep_summary.csv").exists()


def test_time_guard_marks_a_runaway_run_failed(tiny_set, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"fixed: {{data_dir: '{tiny_set}', epochs: 50, batch_size: 8, face_size: 48}}\ngrid: {{method: [cid]}}\n")
    assert cli(["sweep", "01_train", "--grid", str(grid), "--out", str(tmp_path / "s"), "--timeout", "3",
                "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0 of 1 runs ok" in out and "timeout: exceeded 3 s" in out


def test_a_sweep_through_submitit_keeps_the_same_contract(tiny_set, tmp_path):
    """The SLURM path, run by submitit's local executor: every point a job, failures kept and marked."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(json.dumps({"fixed": {"data_dir": str(tiny_set), "epochs": 1, "batch_size": 8, "face_size": 48},
                                "grid": {"method": ["cid", "bogus"]}}))
    out = tmp_path / "sweep"
    table = run_sweep("01_train", grid, out, progress=False, executor="submitit-local")
    assert sorted(table.status) == ["failed", "ok"] and table.job_id.notna().all()
    assert "unknown method 'bogus'" in table[table.status == "failed"].iloc[0].error
    assert table[table.status == "ok"]["matching_1to2/v2f/U"].notna().all()
    assert (out / "sweep.csv").exists() and list((out / "submitit").glob("*_log.out"))
