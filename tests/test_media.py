"""Bad media gives typed errors that name the file; scans and indexes list bad files, never crash."""
import shutil

import av
import cv2
import numpy as np
import pytest

from avlab.cli import main as cli
from avlab.data import media
from avlab.data.voxceleb import VoiceFaceDataset, index_dataset, scan


def write_video_only(path, n=20, side=64):
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width = s.height = side
        s.pix_fmt = "yuv420p"
        for _ in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((side, side, 3), np.uint8), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


@pytest.fixture()
def bad_files(tmp_path, tiny_set):
    """A copy of two good clips plus one of each kind of bad file, in the VoxCeleb layout."""
    import pandas as pd

    root = tmp_path / "mixed"
    good = pd.read_csv(tiny_set / "meta.csv").path[:2]
    for rel in good:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_set / rel, root / rel)
    d = root / "dev" / "mp4" / "id09999" / "badvideo000"
    d.mkdir(parents=True)
    (d / "00001.mp4").write_bytes(b"not a video at all" * 50)  # garbage named .mp4
    (d / "00002.mp4").write_bytes(b"")  # empty
    data = (tiny_set / good[0]).read_bytes()
    (d / "00003.mp4").write_bytes(data[: len(data) // 3])  # truncated
    write_video_only(d / "00004.mp4")  # no audio
    media.write_mp4(d / "00005.mp4", np.zeros((5, 64, 64, 3), np.uint8), np.zeros(3200, np.float32))  # 0.2 s
    return root, list(good)


@pytest.mark.parametrize("reader", [media.probe, media.read_audio, media.read_frames])
def test_garbage_and_empty_files_raise_corrupt_media_naming_the_file(tmp_path, reader):
    for content in (b"garbage" * 100, b""):
        p = tmp_path / "clip.mp4"
        p.write_bytes(content)
        with pytest.raises(media.CorruptMediaError) as err:
            reader(p)
        assert str(p) in str(err.value)


def test_missing_audio_and_out_of_range_frames(tmp_path):
    p = tmp_path / "silent.mp4"
    write_video_only(p)
    with pytest.raises(media.NoAudioError, match="silent.mp4"):
        media.read_audio(p)
    with pytest.raises(media.TooShortError, match="frame 99"):
        media.read_frames(p, [0, 99])


def test_scan_lists_every_bad_file_and_passes_good_ones(bad_files):
    root, good = bad_files
    report = scan(root, workers=2, progress=False)
    assert report["n_files"] == len(good) + 5
    errors = {b["path"].split("/")[-1]: b["error"] for b in report["bad"]}
    assert errors == {"00001.mp4": "CorruptMediaError", "00002.mp4": "CorruptMediaError",
                      "00003.mp4": "CorruptMediaError", "00004.mp4": "NoAudioError", "00005.mp4": "TooShortError"}


def test_cli_scan_reports_bad_files_and_exits_nonzero(bad_files, capsys):
    root, _ = bad_files
    assert cli(["scan", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "BAD dev/mp4/id09999/badvideo000/00004.mp4: NoAudioError" in out
    assert "2 of 7 clips OK, 5 bad" in out


def test_index_keeps_good_clips_and_lists_bad_ones(bad_files):
    root, good = bad_files
    index = index_dataset(root, rescan=True, workers=1, progress=False)
    assert sorted(c.path for c in index.clips) == sorted(good)
    assert sorted(b["path"][-9:] for b in index.bad) == [f"{i:05d}.mp4" for i in range(1, 6)]
    assert {c.identity for c in index.clips} == {g.split("/")[2] for g in good}


def test_dataset_serves_faces_and_log_mels(tiny_set):
    ds = VoiceFaceDataset(tiny_set, ("train",), face_size=48, crop_seconds=1.0, progress=False)
    item = ds[0]
    assert item["face"].shape == (3, 48, 48) and -1.0 <= item["face"].min() <= item["face"].max() <= 1.0
    assert item["wave"].shape == (16000,)
    assert ds.collate([ds[0], ds[1]])["voice"].shape == (2, 64, 101)
    assert set(ds.label_of.values()) == set(range(len(ds.identities)))
    with pytest.raises(ValueError, match="no clips"):
        VoiceFaceDataset(tiny_set, ("nonexistent",), progress=False)


def test_rgb_to_yuv420p_gives_bt601_limited_range_by_hand():
    # white, black, pure red, pure blue: the textbook 8-bit BT.601 values
    colours = np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    frames = np.repeat(np.repeat(colours[:, None, None, :], 2, axis=1), 2, axis=2)  # (4, 2, 2, 3) flat frames
    planes = media.rgb_to_yuv420p(frames)  # (4, 3, 2): two Y rows, then one row holding U and V
    assert planes[:, :2].tolist() == [[[235, 235]] * 2, [[16, 16]] * 2, [[82, 82]] * 2, [[41, 41]] * 2]
    assert planes[:, 2].tolist() == [[128, 128], [128, 128], [90, 240], [240, 110]]
    frame = av.VideoFrame.from_ndarray(planes[2], format="yuv420p")  # the layout PyAV reads
    assert frame.to_ndarray(format="rgb24")[0, 0].tolist() == pytest.approx([255, 0, 0], abs=3)
    with pytest.raises(ValueError, match="even width and height"):
        media.rgb_to_yuv420p(np.zeros((1, 3, 4, 3), np.uint8))


def test_rgb_to_yuv420p_is_swscales_conversion_without_its_dependence_on_memory():
    # smooth pictures, like rendered faces (on pixel noise swscale's chroma filter and a 2×2 mean part ways)
    coarse = np.random.default_rng(0).integers(0, 256, (3, 6, 8, 3)).astype(np.float64)
    frames = np.stack([cv2.resize(c, (64, 48), interpolation=cv2.INTER_CUBIC) for c in coarse]).clip(0, 255)
    frames = frames.astype(np.uint8)
    ours = media.rgb_to_yuv420p(frames)
    theirs = np.stack([av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray()
                       for f in frames])
    assert ours.shape == theirs.shape and np.abs(ours.astype(int) - theirs).max() <= 5
    assert np.abs(ours.astype(int) - theirs).mean() < 0.5
    for offset in (16, 48, 1040):  # the same pixels elsewhere in memory: the same planes
        buf = np.empty(frames.nbytes + 2048, np.uint8)
        moved = buf[offset:offset + frames.nbytes].reshape(frames.shape)
        moved[...] = frames
        assert np.array_equal(media.rgb_to_yuv420p(moved), ours)


def test_write_mp4_hands_the_encoder_our_yuv420p_planes(tmp_path, monkeypatch):
    handed = []
    real = av.VideoFrame.from_ndarray

    def spy(array, format="rgb24", **kw):
        handed.append((format, np.array(array)))
        return real(array, format=format, **kw)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", staticmethod(spy))
    frames = np.random.default_rng(1).integers(0, 256, (4, 16, 24, 3), dtype=np.uint8)
    media.write_mp4(tmp_path / "x.mp4", frames, np.zeros(4 * 640, np.float32))
    video = [a for f, a in handed if f != "flt"]
    assert [f for f, a in handed if f != "flt"] == ["yuv420p"] * 4  # never RGB, which swscale would convert
    assert np.array_equal(np.stack(video), media.rgb_to_yuv420p(frames))
    with pytest.raises(ValueError, match="expected uint8 RGB frames"):
        media.rgb_to_yuv420p(frames.astype(np.float32))
