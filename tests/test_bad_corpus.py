"""The bad-media corpus (tests/bad_media.py) through scan, the index, the dataset, `avlab train` and
the demo: every case handled (kept, noted or listed with a readable reason), no hang, no crash."""
import json
import time
from pathlib import Path

import numpy as np
import pytest

from avlab.cli import main as cli
from avlab.data import media
from avlab.data.voxceleb import VoiceFaceDataset, index_dataset, scan
from bad_media import CASES, case, clip_rel, make_corpus

CLIP_CASES = [c for c in CASES if not c.upload_only]
USABLE = {c.name for c in CLIP_CASES if c.usable}
UNUSABLE = {c.name for c in CLIP_CASES if not c.usable}
HEADER_OK_DECODE_BAD = {"partial_30", "all_bad_audio_packets"}  # what a header probe cannot see


def _case_of(rel: str) -> str:
    return Path(rel).parts[2].removeprefix("id_")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "set"
    uploads = make_corpus(root, good_identities=3, clips_per_identity=2)
    return root, uploads


def _good(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.glob("dev/mp4/id_base*/*/*.mp4")}


def _readable(reason: str) -> bool:
    return not [s for s in ("/", "Errno", ".cc:", "@ 0x", "Traceback") if s in reason]


def test_scan_lists_every_unusable_case_and_notes_what_it_worked_around(corpus, capfd):
    root, _ = corpus
    start = time.monotonic()
    report = scan(root, workers=2, progress=False)
    assert time.monotonic() - start < 120
    bad = {_case_of(b["path"]): b for b in report["bad"] if "id_base" not in b["path"]}
    assert set(bad) == UNUSABLE and all(_readable(b["reason"]) for b in bad.values())
    assert bad["folder"]["reason"] == "is a folder, not a media file"
    assert bad["dangling_link"]["reason"] == "broken link: its target does not exist"
    assert "truncated" in bad["partial_30"]["reason"] and "truncated" in bad["cut_30"]["reason"]
    noted = {_case_of(w["path"]): w["notes"] for w in report["warned"]}
    assert noted == {"one_bad_audio_packet": ["skipped 1 damaged audio packet of 20 (0.06 s)"]}
    assert capfd.readouterr().err == ""  # no decoder log lines


def test_scan_deep_decodes_everything_and_says_so(corpus, capsys):
    root, _ = corpus
    assert cli(["scan", str(root), "--deep", "--quiet", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert f"{len(_good(root)) + len(USABLE)} of {len(_good(root)) + len(CLIP_CASES)} clips OK" in out
    assert "every frame and sample decoded" in out
    assert "NOTE dev/mp4/id_one_bad_audio_packet/video0/00001.mp4: usable, but skipped 1 damaged" in out


def test_the_index_probes_headers_unless_deep(corpus):
    root, _ = corpus
    probed = index_dataset(root, rescan=True, progress=False)
    assert probed.checked == "probed"
    listed = {_case_of(c.path): c for c in probed.clips}
    assert HEADER_OK_DECODE_BAD <= set(listed)  # a header probe accepts a partial download
    assert listed["overclaiming_header"].n_frames == 80  # and believes the header
    deep = index_dataset(root, rescan=True, progress=False, deep=True)
    assert deep.checked == "decoded"
    assert {_case_of(c.path) for c in deep.clips} == USABLE | {_case_of(p) for p in _good(root)}
    assert {_case_of(b["path"]) for b in deep.bad} == UNUSABLE
    assert next(c for c in deep.clips if "overclaiming" in c.path).n_frames == 20  # the frames that decode


def test_the_dataset_keeps_the_good_lists_the_bad_and_can_fail_instead(corpus, tmp_path):
    root, _ = corpus
    with pytest.warns(RuntimeWarning, match=r"\d+ of \d+ clips .* could not be decoded and are left out"):
        ds = VoiceFaceDataset(root, face_size=32, crop_seconds=1.0, progress=False)
    assert {c.path for c in ds.clips} == _good(root) | {clip_rel(case(n)) for n in USABLE}
    report = json.loads(ds.write_bad_clips(tmp_path).read_text())
    assert {_case_of(b["path"]) for b in report["bad"]} == UNUSABLE
    assert report["n_bad"] == len(UNUSABLE) and report["n_clips"] == len(_good(root)) + len(CLIP_CASES)
    assert report["checked"] == "probed" and all(_readable(b["reason"]) for b in report["bad"])
    assert [_case_of(w["path"]) for w in report["warned"]] == ["one_bad_audio_packet"]
    assert ds.frame(len(ds) - 1).shape == (32, 32, 3)
    with pytest.raises(media.MediaError, match=r"id_\w+/video0/00001.mp4: "):
        VoiceFaceDataset(root, face_size=32, crop_seconds=1.0, progress=False, on_bad="fail")


def test_avlab_train_one_epoch_trains_on_the_good_clips(corpus, tmp_path, capsys):
    root, _ = corpus
    run = tmp_path / "run"
    args = ["train", "--method", "cid", "--data", str(root), "--out", str(run), "--epochs", "1", "--batch-size", "4",
            "--workers", "1", "--quiet", "--face-size", "32", "--crop-seconds", "1.0"]
    with pytest.warns(RuntimeWarning, match="could not be decoded"):
        assert cli(args) == 0
    trained = set(json.loads((run / "train_clips.json").read_text()))
    assert trained == _good(root) | {clip_rel(case(n)) for n in USABLE}
    # --on-bad fail: the first bad clip stops the run with one line naming it (exit status 2), no traceback.
    assert cli([*args[:6], str(tmp_path / "run2"), *args[7:], "--on-bad", "fail"]) == 2
    assert "00001.mp4: " in capsys.readouterr().err


def test_header_counts_and_rotation_do_not_fool_the_frame_reader(corpus):
    root, _ = corpus
    avi = root / clip_rel(case("overclaiming_header"))
    assert media.probe(avi).n_frames == 80
    assert media.read_frames(avi, positions=[0, 0.5, 1], size=32).shape == (3, 32, 32, 3)
    with pytest.raises(media.TooShortError, match="frame 40 requested but the video has 20 frames"):
        media.read_frames(avi, [40])
    rotated = root / clip_rel(case("rotated"))
    raw = media.read_frames_pyav(rotated)[5].astype(float)  # as stored, before the display matrix
    upright = np.rot90(raw, -1)  # the matrix says: turn clockwise
    assert np.abs(media.read_frames(rotated, [5])[0] - upright).mean() < 3 < np.abs(upright - raw).mean()
    fallback = media._read_frames_fallback(rotated, [5], None, None, RuntimeError("decord failed"), None)
    assert np.abs(media._upright(fallback, media._rotation(rotated))[0] - upright).mean() < 3  # the PyAV path too


def test_a_decompression_bomb_gets_the_megapixel_message(corpus):
    from avlab.data.uploads import UploadError, read_face

    with pytest.raises(UploadError, match=r"'huge_image.png' is 400 million pixels; the limit is 40 megapixels"):
        read_face(corpus[1]["huge_image"], 32)


DEMO_EXPECTED = {  # case → (voice answer, face answer): "ranked" or words of the refusal
    "good": ("ranked", "ranked"),
    "empty": ("is empty", "is empty"),
    "random": ("cannot open container", "cannot open container"),
    "wrong_ext": ("no audio stream", "ranked"),  # a PNG named .mp4 still shows a face
    "no_audio": ("no audio stream", "ranked"),
    "no_video": ("ranked", "no video stream"),
    "too_short": ("s long; at least 0.5 s", "ranked"),
    "silent": ("is silent", "ranked"),
    "partial_30": ("file is truncated: its audio stops", "file is truncated"),
    "cut_30": ("truncated or damaged", "truncated or damaged"),
    "one_bad_audio_packet": ("ranked", "ranked"),
    "all_bad_audio_packets": ("19 of its 20 packets are damaged", "ranked"),
    "overclaiming_header": ("ranked", "ranked"),
    "huge_image": ("unsupported type .png", "40 megapixels"),
    "wrong_type": ("unsupported type .txt", "Invalid file type"),
}


def test_the_demo_answers_every_case_in_one_line(corpus, demo_server):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(demo_server.url, verbose=False)
    log_before = demo_server.log.read_text()
    for c in CASES:
        path = corpus[1][c.name]
        if not path.is_file():  # a folder or a dangling link cannot be uploaded at all
            continue
        for k, api in enumerate(["/voice_to_face", "/face_to_voice"]):
            want = DEMO_EXPECTED.get(c.name, ("ranked", "ranked"))[k]
            try:
                out = client.predict(None, handle_file(str(path)), None, api_name=api)
                got = "ranked"
            except AppError as err:
                got = str(err)
                assert _readable(got.replace("/voice_to_face", "").replace("/face_to_voice", "")), got
            assert want in got, (c.name, api, got)
    new = demo_server.log.read_text()[len(log_before):]
    assert "Traceback" not in new
