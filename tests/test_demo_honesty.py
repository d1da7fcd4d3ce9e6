"""The demo says what its model was trained on, how good the run measured against chance and the
oracle, when a query is out of domain, and labels test clips so a visitor can read them."""
import json
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from avlab.tasks.run_card import headline, headline_markdown, trained_on_markdown


def _eval(run: Path, value: float, ci: list[float]) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    leaf = lambda v: {"unseen_unheard": {"verification": {"U": {"auc": v}}}}  # noqa: E731
    (run / "eval.json").write_text(json.dumps({"task": "voice-face", "metrics": leaf(value), "ci": leaf(ci),
                                               "chance": leaf(0.5), "oracle": leaf(0.93)}))
    return run


@pytest.mark.parametrize("value, ci, beats", [(0.531, [0.41, 0.66], False), (0.74, [0.68, 0.8], True)])
def test_the_headline_is_shown_beside_chance_and_the_oracle_with_its_interval(tmp_path, value, ci, beats):
    run = _eval(tmp_path / "run", value, ci)
    h = headline(run)
    assert (h["metric"], h["value"], h["ci"], h["chance"], h["oracle"], h["beats_chance"]) == \
           ("verification/U/auc", value, ci, 0.5, 0.93, beats)
    text = headline_markdown(run)
    assert f"**{value:.3f}** (95 % interval {ci[0]:.3f}–{ci[1]:.3f}) · chance 0.500 · oracle 0.930" in text
    assert ("not better than chance" in text) is not beats


def test_an_unevaluated_run_says_so(tmp_path):
    assert headline(tmp_path) is None and "not been evaluated" in headline_markdown(tmp_path)


def test_a_synthetic_run_says_it_never_saw_a_real_face(tiny_cmpc_run):
    text = trained_on_markdown(tiny_cmpc_run)
    assert "synthetic data only" in text and "talking-faces" in text and "never seen a real face" in text


@pytest.fixture(scope="module")
def matcher(tiny_cmpc_run):
    from avlab.tasks.voiceface.matcher import Matcher

    return Matcher(tiny_cmpc_run, gallery_identities=6)


def test_picker_labels_name_speaker_recording_clip_and_duration(matcher):
    for label, path in matcher.test_clip_choices():
        c = next(c for c in matcher.ds.clips if c.path == path)
        assert re.fullmatch(r"Speaker \d+ · recording \d+, clip \d+ · \d+\.\d s \(id\d+\)", label), label
        assert label.endswith(f"({c.identity})")


def test_uploads_far_from_every_clip_are_marked_out_of_domain(matcher, tiny_set):
    from avlab.tasks.voiceface.demo import _summary

    _, path = matcher.test_clip_choices()[0]
    assert matcher.voice_item(Path(tiny_set) / path).warning == ""  # a test clip's own file is in domain
    reference = matcher._domain()["face"][0]
    away = -reference.mean(0) / np.linalg.norm(reference.mean(0))  # opposite to the clips' mean face
    warning = matcher.domain_warning("me.png", away, "face")
    assert warning.startswith("⚠ 'me.png' is out of domain: its nearest face among the")
    ranking = matcher.voice_to_face(test_clip=path)
    ranking.warnings.append(warning)
    summary = _summary(ranking, at_chance=True)
    first, second, rest = summary.split("\n\n")  # each warning its own paragraph, then the result
    assert first == f"**{warning}**" and "not better than chance" in second and "True match ranked" in rest


def test_the_page_states_training_data_and_headline(demo_server):
    from gradio_client import Client

    config = httpx.get(demo_server.url + "config", timeout=30).text
    assert "Trained on synthetic data only" in config and "**Headline** (unseen-unheard" in config
    md, _, _ = Client(demo_server.url, verbose=False).predict(api_name="/run_card")
    assert "Headline" in md and "synthetic data only" in md
