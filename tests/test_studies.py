"""The study summaries (CMPC claim, low-shot) and the report's tables of them, on hand-made rows."""
import importlib.util
import json
from pathlib import Path

import pytest

from avlab.lowshot import summarise as lowshot_summary, table_text
from avlab.viz.report import study_table

ROOT = Path(__file__).resolve().parent.parent


def claim_module():
    spec = importlib.util.spec_from_file_location("cmpc_claim", ROOT / "benchmarks" / "cmpc_claim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(value: float, purity: float | None = None) -> dict:
    r = {"run": "r", "metrics": {m: value for m in claim_module().METRICS}, "clips_per_s": 10.0}
    if purity is not None:
        r["first_clustering"] = {"voice": [{"k": 4, "purity": purity, "nmi": 0.1}],
                                 "face": [{"k": 4, "purity": purity, "nmi": 0.1}]}
    return r


def test_interval_over_seeds_is_a_student_t_interval():
    cell = claim_module().interval([0.6, 0.7, 0.8])
    half = 4.302653 * 0.1 / 3 ** 0.5  # t(0.975, 2 dof) · sd / √n, by hand
    assert cell["mean"] == 0.7 and cell["sd"] == pytest.approx(0.1)
    assert cell["ci95"] == [pytest.approx(0.7 - half, abs=1e-4), pytest.approx(0.7 + half, abs=1e-4)]


def test_claim_differences_are_paired_by_seed_and_the_table_shows_them(tmp_path):
    m = claim_module()
    rows = {"cid": [row(0.60), row(0.70), row(0.65)], "cmpc": [row(0.62, 0.5), row(0.72, 0.6), row(0.67, 0.7)]}
    summary = m.summarise(rows)
    diff = summary["cmpc"]["minus_cid"]["verification/U/auc"]
    # paired: the per-seed differences are all +0.02, so the interval is a point even though the
    # seeds' values spread by ±0.05
    assert diff["per_seed"] == [0.02, 0.02, 0.02] and diff["ci95"] == [0.02, 0.02]
    assert "minus_cid" not in summary["cid"] and summary["cmpc"]["first_clustering"][1]["face"][0]["purity"] == 0.6
    study = {"benchmark": "cmpc_claim", "budgets": {"40": {"chance": {k: 0.5 for k in m.METRICS},
                                                           "oracle": {k: 0.95 for k in m.METRICS},
                                                           "settings": summary}}}
    (tmp_path / "cmpc_claim.json").write_text(json.dumps(study))
    table = study_table(tmp_path / "cmpc_claim.json")
    assert list(table.setting) == ["cid", "cmpc"] and table["minus CID (paired)"][1] == "+0.020 [+0.020, +0.020]"
    assert table["first clustering purity (face, finest K)"][1] == "0.50"


def test_lowshot_summary_means_over_seeds(tmp_path):
    rows = [{"fraction": 0.1, "seed": s, "row": name, "run": "r", "verification/U/auc": v}
            for s, (a, b) in enumerate([(0.6, 0.7), (0.8, 0.7)]) for name, v in (("cid/fine-tune", a), ("scratch", b))]
    table = lowshot_summary(rows)
    assert table["0.1"]["cid/fine-tune"]["verification/U/auc"] == [pytest.approx(0.7), pytest.approx(0.1)]
    assert table["0.1"]["scratch"]["verification/U/auc"] == [pytest.approx(0.7), 0.0]
    study = {"split": "unseen_unheard", "seeds": [0, 1], "recipe": {}, "table": table}
    assert "10.0 % labels  cid/fine-tune" in table_text(study)
    (tmp_path / "lowshot.json").write_text(json.dumps(study))
    assert list(study_table(tmp_path / "lowshot.json").model) == ["cid/fine-tune", "scratch"]
    with pytest.raises(ValueError, match="not a study"):
        (tmp_path / "x.json").write_text("{}")
        study_table(tmp_path / "x.json")


def fake_eval(run: Path, auc: float, ci: tuple, oracle: float = 0.95) -> Path:
    run.mkdir(parents=True)
    tree = lambda v: {"unseen_unheard": {"verification": {"U": {"auc": v}}}}  # noqa: E731
    (run / "eval.json").write_text(json.dumps({"task": "voice-face", "metrics": tree(auc), "ci": tree(list(ci)),
                                               "chance": tree(0.5), "oracle": tree(oracle)}))
    return run


def test_the_main_jobs_one_line_names_the_best_run_its_interval_and_the_gap(tmp_path):
    from avlab.viz.report import headline_sentence

    runs = [fake_eval(tmp_path / "cid", 0.70, (0.65, 0.75)), fake_eval(tmp_path / "cmpc", 0.60, (0.48, 0.71))]
    line = headline_sentence(runs)
    assert "the best run, cid, scores verification · U · AUC 0.700 (95 % interval 0.650–0.750)" in line
    assert "closed 44% of the gap" in line and line.endswith("it learned.")  # (0.70 − 0.5) / (0.95 − 0.5)
    assert headline_sentence(runs[1:]).endswith("not yet distinguishable from an untrained model.")


def test_the_main_job_refuses_a_quick_set_of_an_older_profile(tmp_path):
    from dataclasses import asdict

    from avlab.cli import check_quick_set
    from avlab.data.synth.talking_faces import TalkingFacesConfig

    check_quick_set(tmp_path)  # no stamp: the user's own data
    current = asdict(TalkingFacesConfig.from_profile("quick"))
    (tmp_path / "synth_config.json").write_text(json.dumps({"benchmark": "talking-faces", **current}))
    check_quick_set(tmp_path)
    (tmp_path / "synth_config.json").write_text(json.dumps({**current, "identities": 7}))
    with pytest.raises(ValueError, match=r"older profile \(\{'identities': '7 \(now \d+\)'\}\).*nothing was deleted"):
        check_quick_set(tmp_path)


def test_the_localisation_stage_refuses_a_sounding_objects_set_of_an_older_quick_profile(tmp_path):
    from dataclasses import asdict

    from avlab.cli import check_quick_set
    from avlab.data.synth.sounding_objects import SoundingObjectsConfig

    current = asdict(SoundingObjectsConfig.from_profile("quick"))  # snr_db a tuple here, a list in JSON
    (tmp_path / "synth_config.json").write_text(json.dumps({"benchmark": "sounding-objects", **current}))
    check_quick_set(tmp_path, "sounding-objects")
    (tmp_path / "synth_config.json").write_text(json.dumps({**current, "clips_per_class": 32}))
    with pytest.raises(ValueError, match=r"'clips_per_class': '32 \(now 160\)'.*nothing was deleted"):
        check_quick_set(tmp_path, "sounding-objects")
    before_48 = {**current, "size": 64, "max_distractors": 3}  # the quick set until 2026-11-28
    (tmp_path / "synth_config.json").write_text(json.dumps(before_48))
    with pytest.raises(ValueError, match=r"'size': '64 \(now 48\)', 'max_distractors': '3 \(now 1\)'.*--loc-data"):
        check_quick_set(tmp_path, "sounding-objects")


def test_the_localisation_stage_trains_at_the_quick_sets_frame_size():
    from avlab.cli import LOC_JOB
    from avlab.data.synth.sounding_objects import SoundingObjectsConfig

    assert LOC_JOB["task_options"]["image_size"] == SoundingObjectsConfig.from_profile("quick").size


def lipreading_module():
    spec = importlib.util.spec_from_file_location("lipreading_bench", ROOT / "benchmarks" / "lipreading.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lipreading_table_pairs_each_variant_with_adc_ssl_by_seed():
    m = lipreading_module()
    rows = [{"variant": v, "seed": s, "frozen/top1": top1, "identity_leakage": leak}
            for v, s, top1, leak in [("adc-ssl", 1, 0.5, 0.3), ("adc-ssl", 0, 0.4, 0.2), ("cid", 0, 0.3, 0.5),
                                     ("cid", 1, 0.5, 0.4), ("supervised", 0, 0.9, 0.9)]]
    table = m.table(rows)
    assert table["adc-ssl"]["frozen/top1"]["mean"] == pytest.approx(0.45)
    diff = table["cid"]["minus_adc_ssl"]
    assert diff["frozen/top1"]["per_seed"] == [-0.1, 0.0] and diff["identity_leakage"]["per_seed"] == [0.3, 0.1]
    assert table["supervised"]["minus_adc_ssl"]["frozen/top1"]["per_seed"] == [0.5]  # paired on seed 0 only
    assert "finetune/top1" not in table["cid"]  # not measured, not reported


def test_lipreading_benchmark_runs_and_writes_its_table(tiny_lip_words, tmp_path):
    m = lipreading_module()
    summary = m.main(["--data", str(tiny_lip_words), "--out", str(tmp_path), "--variants", "random-init", "adc-ssl",
                      "--epochs", "1", "--batch-size", "8", "--roi-size", "24", "--crop-size", "20", "--threads", "1"])
    assert [r["variant"] for r in summary["rows"]] == ["random-init", "adc-ssl"]
    assert json.loads((tmp_path / "random-init-seed0" / "config.json").read_text())["epochs"] == 0
    assert summary["oracle"]["visual"]["top1"] == pytest.approx(4 / 6)
    assert set(summary["table"]) == {"random-init", "adc-ssl"} and "frozen/top1" in summary["table"]["adc-ssl"]
    written = json.loads((tmp_path / "summary.json").read_text())["table"]
    assert json.dumps(written) == json.dumps(summary["table"])  # (one seed: NaN intervals, equal only as text)


def test_lipreading_rows_resume_a_study_elsewhere_and_refuse_another_budget_or_set(tiny_lip_words, tmp_path):
    m = lipreading_module()
    rows = tmp_path / "rows"
    common = ["--batch-size", "8", "--roi-size", "24", "--crop-size", "20", "--threads", "1", "--rows", str(rows)]
    first = m.main(["--data", str(tiny_lip_words), "--out", str(tmp_path / "here"), "--variants", "random-init", *common])
    stored = rows / "random-init-seed0.json"
    assert sorted(p.name for p in rows.iterdir()) == [stored.name]
    written = stored.stat().st_mtime_ns
    # the same study again: the stored row is reused, nothing trains and the file is not rewritten
    again = m.main(["--data", str(tiny_lip_words), "--out", str(tmp_path / "again"), "--variants", "random-init", *common])
    assert again["rows"] == first["rows"] and not (tmp_path / "again" / "random-init-seed0").exists()
    assert stored.stat().st_mtime_ns == written
    # another machine without the set: the table of what is stored, the rest listed as missing
    there = m.main(["--data", str(tmp_path / "absent"), "--out", str(tmp_path / "there"), "--only-stored",
                    "--variants", "random-init", "adc-ssl", *common])
    assert there["rows"] == first["rows"] and there["missing"] == ["adc-ssl seed 0"]
    assert there["oracle"] == first["oracle"] and there["oracle"]["visual"]["top1"] == pytest.approx(4 / 6)
    # another budget or another set is refused before anything trains, naming the file and the field
    with pytest.raises(SystemExit, match=r"random-init-seed0.json: stored under another study: budget epochs = 10 "
                                         r"\(this study: 3\)"):
        m.main(["--data", str(tiny_lip_words), "--out", str(tmp_path / "other"), "--variants", "adc-ssl",
                "--epochs", "3", *common])
    assert not (tmp_path / "other" / "adc-ssl-seed0").exists()
    other_set = json.loads(stored.read_text())
    other_set["data"]["synth_config"]["words"] += 1
    (rows / "x.json").write_text(json.dumps(other_set))
    with pytest.raises(SystemExit, match=r"x.json: .*data set words = \d+ .*it holds random-init seed 0"):
        m.main(["--data", str(tiny_lip_words), "--out", str(tmp_path / "other"), "--variants", "random-init", *common])
    assert stored.stat().st_mtime_ns == written


def test_lipreading_rows_need_a_finished_generated_set(tiny_lip_words, tmp_path):
    m = lipreading_module()
    with pytest.raises(SystemExit):  # argparse's error: real data has no synth_config.json to compare rows by
        m.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--rows", str(tmp_path / "rows")])
    half = tmp_path / "half"
    half.mkdir()
    (half / "synth_config.json").write_text((tiny_lip_words / "synth_config.json").read_text())
    with pytest.raises(SystemExit, match=r"half: generation did not finish \(no oracle.json\)"):
        m.main(["--data", str(half), "--out", str(tmp_path / "o"), "--rows", str(tmp_path / "rows")])


def localisation_module():
    spec = importlib.util.spec_from_file_location("localisation_bench", ROOT / "benchmarks" / "localisation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_localisation_benchmark_runs_and_writes_its_table(tiny_sounding_objects, tmp_path):
    m = localisation_module()
    summary = m.main(["--data", str(tiny_sounding_objects), "--out", str(tmp_path), "--variants", "cmac", "cid",
                      "--epochs", "1", "--batch-size", "8", "--threads", "1"])
    assert [r["variant"] for r in summary["rows"]] == ["cmac", "cid"]
    assert json.loads((tmp_path / "cmac-seed0" / "config.json").read_text())["task_args"] == {"augment": False}
    assert summary["chance"]["localisation/centre_prior/auc"] > 0 and "localisation/beta_v/auc" in summary["table"]["cmac"]
    diff = summary["table"]["cid"]["minus_cmac"]["probe/linear/audio"]["per_seed"][0]
    assert diff == pytest.approx(summary["rows"][1]["probe/linear/audio"] - summary["rows"][0]["probe/linear/audio"], abs=1e-4)
