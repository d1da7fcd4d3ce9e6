"""Demo inputs and engine, in process: uploads get the training preprocessing, bad ones a clear
message, and the ranking is the model's own cosine scores."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from avlab.data import uploads as inputs
from avlab.data.uploads import Limits, UploadError, read_face, read_voice, square_crop


def drawn_face(width=400, height=300, cx=280, cy=150, s=60) -> np.ndarray:
    """A flat cartoon face that OpenCV's frontal Haar cascade detects (checked by a test below)."""
    img = np.full((height, width, 3), 200, np.uint8)
    cv2.ellipse(img, (cx, cy), (int(s * 0.8), s), 0, 0, 360, (180, 140, 120), -1)
    for dx in (-1, 1):
        cv2.ellipse(img, (cx + dx * int(s * 0.35), cy - int(s * 0.25)), (int(s * 0.18), int(s * 0.09)), 0, 0, 360,
                    (40, 30, 30), -1)
        cv2.line(img, (cx + dx * int(s * 0.2), cy - int(s * 0.45)), (cx + dx * int(s * 0.5), cy - int(s * 0.45)),
                 (60, 40, 30), max(1, int(s * 0.07)))
    cv2.line(img, (cx, cy - int(s * 0.1)), (cx, cy + int(s * 0.2)), (150, 110, 95), max(1, int(s * 0.08)))
    cv2.ellipse(img, (cx, cy + int(s * 0.5)), (int(s * 0.3), int(s * 0.08)), 0, 0, 360, (90, 40, 40), -1)
    return cv2.GaussianBlur(img, (0, 0), s * 0.04)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


def test_square_crop_centres_on_the_box_and_stays_inside_the_image():
    img = np.arange(100 * 200).reshape(100, 200, 1).repeat(3, 2)
    assert square_crop(img, None).shape == (100, 100, 3)
    assert (square_crop(img, None)[0, 0] == img[0, 50]).all()  # centre square
    crop = square_crop(img, (150, 40, 20, 20), margin=2.0)  # 40 px square around (160, 50)
    assert crop.shape == (40, 40, 3) and (crop[0, 0] == img[30, 140]).all()
    crop = square_crop(img, (185, 80, 20, 20), margin=2.0)  # would overhang the corner: shifted inside
    assert crop.shape == (40, 40, 3) and (crop[-1, -1] == img[99, 199]).all()


def test_a_drawn_face_is_detected_and_cropped_and_a_blank_image_falls_back_to_the_centre(tmp_path):
    img = drawn_face()
    box = inputs.detect_face(img)
    assert box is not None
    x, y, w, h = box
    assert abs(x + w / 2 - 280) < 25 and abs(y + h / 2 - 150) < 25  # found where it was drawn
    face, note = read_face(write_png(tmp_path / "me.png", img), size=32)
    assert face.shape == (32, 32, 3) and face.dtype == np.uint8
    assert "face detected (OpenCV Haar)" in note and "'me.png'" in note
    expected = cv2.resize(square_crop(img, box), (32, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(face, expected)
    _, note = read_face(write_png(tmp_path / "wall.png", np.full((90, 120, 3), 128, np.uint8)), size=32)
    assert "no face detected: centre crop used" in note


def test_a_video_upload_uses_its_middle_frame_like_training(tiny_set):
    clip = next(Path(tiny_set).rglob("*.mp4"))
    face, note = read_face(clip, size=48)
    assert face.shape == (48, 48, 3) and "video's middle frame" in note
    wave, note = read_voice(clip)
    assert wave.dtype == np.float32 and len(wave) > 16_000 * inputs.MIN_VOICE_SECONDS and "s" in note


@pytest.mark.parametrize("name, content, reader, message", [
    ("garbage.mp4", b"\x00\x17nonsense" * 100, read_voice, "cannot be used"),
    ("garbage.mp4", b"\x00\x17nonsense" * 100, read_face, "cannot be used"),
    ("empty.wav", b"", read_voice, "is empty"),
    ("notes.txt", b"hello", read_voice, "unsupported type .txt"),
    ("notes.txt", b"hello", read_face, "unsupported type .txt"),
    ("notes.wav", b"just some text, not audio" * 10, read_voice, "cannot be used"),
    ("broken.png", b"\x89PNG not really", read_face, "not a readable image"),
])
def test_bad_uploads_raise_a_clear_error_naming_the_file(tmp_path, name, content, reader, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UploadError) as err:
        reader(path) if reader is read_voice else reader(path, 32)
    text = str(err.value)
    assert message in text and name in text
    assert str(tmp_path) not in text  # the server's folders are not revealed


def test_short_silent_and_oversized_voices_are_refused(tmp_path):
    sf.write(tmp_path / "short.wav", np.random.default_rng(0).normal(0, 0.1, 3200).astype(np.float32), 16_000)
    with pytest.raises(UploadError, match="0.20 s long; at least 0.5 s"):
        read_voice(tmp_path / "short.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(32_000, np.float32), 16_000)
    with pytest.raises(UploadError, match="is silent"):
        read_voice(tmp_path / "silent.wav")
    sf.write(tmp_path / "long.wav", np.random.default_rng(0).normal(0, 0.1, 48_000).astype(np.float32), 16_000)
    with pytest.raises(UploadError, match="the limit is 0 MB"):
        read_voice(tmp_path / "long.wav", Limits(max_bytes=1000))
    wave, note = read_voice(tmp_path / "long.wav", Limits(max_voice_seconds=1.0))
    assert len(wave) == 16_000 and "the first 1 s used" in note


@pytest.fixture(scope="module")
def matcher(tiny_cmpc_run):
    from avlab.tasks.voiceface.matcher import Matcher

    return Matcher(tiny_cmpc_run, gallery_identities=8)


@pytest.fixture(scope="module")
def own_embeddings(tiny_test_embeddings):
    return {clip.path: (clip, v, f) for clip, v, f in tiny_test_embeddings}


def test_the_test_gallery_is_one_clip_per_unseen_identity_and_queries_come_from_other_clips(matcher, own_embeddings):
    gallery = [matcher.ds.clips[i] for i in matcher.gallery]
    queries = [matcher.ds.clips[i] for i in matcher.queries]
    identities = sorted({c.identity for c, _, _ in own_embeddings.values()})
    assert [c.identity for c in gallery] == identities[:8]
    assert not {c.path for c in gallery} & {c.path for c in queries}
    assert {c.identity for c in queries} <= {c.identity for c in gallery}


def test_voice_to_face_ranks_by_the_models_cosine_scores_and_marks_the_true_match(matcher, own_embeddings):
    for _, query in matcher.test_clip_choices()[:3]:
        ranking = matcher.voice_to_face(test_clip=query)
        q_clip, q_voice, _ = own_embeddings[query]
        gallery = [own_embeddings[matcher.ds.clips[i].path] for i in matcher.gallery]
        want = sorted(((float(face @ q_voice), clip.identity) for clip, _, face in gallery), key=lambda t: -t[0])
        assert [identity for _, identity in want] == [it.identity for it in ranking.items]
        assert np.allclose([score for score, _ in want], ranking.scores, atol=1e-5)
        marked = [row[2] for row in ranking.rows() if row[4] == "✓"]
        assert marked == [q_clip.identity] and ranking.rows()[ranking.true_rank - 1][2] == q_clip.identity


def test_face_to_voice_ranks_voices_by_the_models_scores(matcher, own_embeddings):
    query = matcher.test_clip_choices()[-1][1]
    ranking = matcher.face_to_voice(test_clip=query)
    _, _, q_face = own_embeddings[query]
    want = sorted((float(own_embeddings[matcher.ds.clips[i].path][1] @ q_face) for i in matcher.gallery), reverse=True)
    assert np.allclose(want, ranking.scores, atol=1e-5)
    assert all(it.wave is not None and it.wave.ndim == 1 for it in ranking.items)


def test_an_uploaded_test_clip_scores_like_the_test_clip_itself(matcher, tiny_set):
    """Uploads go through the evaluation's preprocessing: the same clip, uploaded, ranks the same."""
    _, query = matcher.test_clip_choices()[0]
    as_test = matcher.voice_to_face(test_clip=query)
    as_upload = matcher.voice_to_face(voice=Path(tiny_set) / query)
    assert [it.name for it in as_upload.items] == [it.name for it in as_test.items]
    assert np.allclose(as_upload.scores, as_test.scores, atol=1e-3)
    assert as_upload.true_rank is None and as_upload.query.name == Path(query).name


def test_uploaded_galleries_are_ranked_and_capped(matcher, tmp_path, tiny_set):
    faces = [write_png(tmp_path / "drawn.png", drawn_face()), next(Path(tiny_set).rglob("*.mp4"))]
    ranking = matcher.voice_to_face(test_clip=matcher.test_clip_choices()[0][1], faces=[str(f) for f in faces])
    assert sorted(it.name for it in ranking.items) == sorted(f.name for f in faces)
    assert list(ranking.scores) == sorted(ranking.scores, reverse=True)
    assert any("face detected (OpenCV Haar)" in n for n in ranking.notes)
    with pytest.raises(UploadError, match="at most"):
        matcher.voice_to_face(test_clip=matcher.test_clip_choices()[0][1],
                              faces=[str(faces[0])] * (matcher.limits.max_gallery_files + 1))
    with pytest.raises(UploadError, match="not one of this demo's test clips"):
        matcher.voice_to_face(test_clip="../../etc/passwd")


def test_newest_run_picks_the_last_written_model(tmp_path):
    import os

    from avlab.runs import newest_run

    assert newest_run(tmp_path) is None
    for i, name in enumerate(["a", "b/c", "d"]):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "model.safetensors").write_bytes(b"x")
        os.utime(tmp_path / name / "model.safetensors", (1000 + i * (-1 if name == "d" else 1),) * 2)
    assert newest_run(tmp_path) == tmp_path / "b/c"


def test_newest_runs_gives_the_newest_of_each_task_in_registry_order(tmp_path):
    import json
    import os

    from avlab.demo.app import one_run_per_task
    from avlab.runs import newest_runs

    assert newest_runs(tmp_path) == []
    written = [("vf-old", "voice-face", "cid"), ("loc", "sound-localisation", "cmac"), ("lip", "lip-reading", "adc-ssl"),
               ("vf-new", "voice-face", "cmpc"), ("broken", None, None), ("plugin", "gone-task", "cid")]
    for t, (name, task, method) in enumerate(written):
        (tmp_path / name).mkdir()
        if task:
            (tmp_path / name / "config.json").write_text(json.dumps({"method": method, "task": task, "data": "d"}))
        (tmp_path / name / "model.safetensors").write_bytes(b"x")
        os.utime(tmp_path / name / "model.safetensors", (1000 + t,) * 2)
    runs = newest_runs(tmp_path)  # passed over: no config.json, an unregistered task, an older voice-face run
    assert runs == [tmp_path / "lip", tmp_path / "loc", tmp_path / "vf-new"]
    assert one_run_per_task(runs) == runs
    with pytest.raises(ValueError, match="vf-old and .*vf-new are both voice-face runs: a page shows one run per task"):
        one_run_per_task([tmp_path / "vf-old", tmp_path / "lip", tmp_path / "vf-new"])
