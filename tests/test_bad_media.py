"""Bad media made on the fly: typed, readable errors; a cache build skips bad clips and lists them."""
import json
import os
import time

import av
import numpy as np
import pytest

from avlab.data import media
from avlab.data.voxceleb import build_cache, index_dataset, scan

READERS = [media.probe, media.read_audio, media.read_frames]


def good_clip(path, seed=0, n=30, side=64):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    media.write_mp4(path, frames, 0.1 * rng.standard_normal(n * 640).astype(np.float32))


def faststart_copy(src, dst):
    """``src`` remuxed with its index first, as streaming sites serve it: cut short, such a file still
    probes fine (the partial download that index_dataset accepts) and fails only when decoded."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def cut(path, share):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])


def garble_audio(path):
    """Overwrite every audio packet but the first with noise: the container and video stay fine."""
    data = bytearray(path.read_bytes())
    with av.open(str(path)) as c:
        spans = [(p.pos, p.size) for p in c.demux(c.streams.audio[0]) if p.size]
    rng = np.random.default_rng(0)
    for pos, size in spans[1:]:
        data[pos:pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.fixture()
def clip_dir(tmp_path, monkeypatch):
    """Good and bad clips in the VoxCeleb layout, and a private cache folder."""
    monkeypatch.setenv("AVLAB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "set"
    good, bad = [], {}
    for k in range(3):
        rel = f"dev/mp4/id0000{k}/video0/00001.mp4"
        good_clip(root / rel, seed=k)
        good.append(rel)
    d = root / "dev" / "mp4" / "id09999" / "video0"
    d.mkdir(parents=True)
    faststart_copy(root / good[0], d / "partial.mp4")
    cut(d / "partial.mp4", 0.3)
    good_clip(d / "bad_audio.mp4", seed=9)
    garble_audio(d / "bad_audio.mp4")
    good_clip(d / "cut.mp4", seed=10)
    cut(d / "cut.mp4", 0.3)  # index at the end: the cut loses it
    (d / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (d / "empty.mp4").write_bytes(b"")
    (d / "folder.mp4").mkdir()
    (d / "dangling.mp4").symlink_to(d / "nowhere.mp4")
    return root, good


EXPECTED = {  # file → (error type, words of the reason) for every reader
    "cut.mp4": (media.CorruptMediaError, "truncated or damaged"),
    "random.mp4": (media.CorruptMediaError, "cannot open container (Invalid data found"),
    "empty.mp4": (media.CorruptMediaError, "file is empty"),
    "folder.mp4": (media.MissingMediaError, "is a folder, not a media file"),
    "dangling.mp4": (media.MissingMediaError, "broken link: its target does not exist"),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unreadable_files_give_typed_readable_errors(clip_dir, reader, name, capfd):
    path = clip_dir[0] / "dev/mp4/id09999/video0" / name
    cls, words = EXPECTED[name]
    with pytest.raises(cls) as err:
        reader(path)
    assert type(err.value) is cls and str(err.value) == f"{path}: {err.value.reason}"
    assert words in err.value.reason
    assert not [s for s in ("/", "Errno", ".cc:", "@ 0x") if s in err.value.reason]  # no path, errno, decoder log
    assert capfd.readouterr().err == ""  # no decoder log lines on the terminal


def test_files_that_probe_fine_but_do_not_decode(clip_dir, capfd):
    d = clip_dir[0] / "dev/mp4/id09999/video0"
    assert media.probe(d / "partial.mp4").n_frames == 30 and media.probe(d / "bad_audio.mp4").n_frames == 30
    with pytest.raises(media.CorruptMediaError, match="truncated: its audio stops at 0.[0-9]+ s of 1.20 s"):
        media.read_audio(d / "partial.mp4")
    with pytest.raises(media.CorruptMediaError, match=r"truncated: its video stops at 0.[0-9]+ s of 1.20 s"):
        media.read_frames(d / "partial.mp4", [1, 28])
    with pytest.raises(media.CorruptMediaError, match="audio stream cannot be decoded: 19 of its 20 packets are damaged"):
        media.read_audio(d / "bad_audio.mp4")
    assert media.read_frames(d / "bad_audio.mp4", [0, 29]).shape == (2, 64, 64, 3)
    assert capfd.readouterr().err == ""


def test_decoder_messages_lose_source_locations_errnos_and_paths():
    why = media.why
    assert why(RuntimeError("[10:21:33] /github/workspace/src/video/video_reader.cc:486: Error: "
                            "av_read_frame failed with 1094995529"), "/x/a.mp4") \
        == "av_read_frame failed: Invalid data found when processing input"
    assert why(RuntimeError("Error reading /x/a.mp4..."), "/x/a.mp4") == "Error reading the file"
    assert why(FileNotFoundError(2, "No such file or directory", "/x/a.mp4"), "/x/a.mp4") == "No such file or directory"


def test_cache_build_skips_clips_that_fail_to_decode(clip_dir, capfd):
    root, good = clip_dir
    index = index_dataset(root, workers=2, progress=False)
    accepted = sorted(c.path for c in index.clips)  # the partial download and bad audio pass the header probe
    assert accepted == sorted(good + ["dev/mp4/id09999/video0/bad_audio.mp4", "dev/mp4/id09999/video0/partial.mp4"])
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match="2 of 5 clips .40%. could not be decoded"):
        out = build_cache(index, index.clips, size=32, frames_per_clip=2, workers=2, progress=False)
    assert time.monotonic() - start < 60
    with np.load(out) as data:
        assert list(data["paths"]) == sorted(good)  # exactly the kept clips, in order
        assert data["frames"].shape == (3, 2, 32, 32, 3) and len(data["offsets"]) == 4
        bad = {b["path"].split("/")[-1]: b for b in json.loads(str(data["bad"]))}
    assert sorted(bad) == ["bad_audio.mp4", "partial.mp4"]
    assert "truncated" in bad["partial.mp4"]["reason"] and bad["bad_audio.mp4"]["error"] == "CorruptMediaError"
    assert capfd.readouterr().err == ""
    with pytest.raises(media.CorruptMediaError, match="bad_audio.mp4: audio stream cannot be decoded"):
        build_cache(index, index.clips, size=32, frames_per_clip=2, on_bad="fail")  # the reused cache, same policy


def test_a_clip_rewritten_after_the_cache_was_built_is_decoded_again(clip_dir):
    """A set regenerated in place (same paths, new files) must not be read from the old cache."""
    root, good = clip_dir
    index = index_dataset(root, workers=1, progress=False)
    clips = [c for c in index.clips if c.path in good]
    first = build_cache(index, clips, size=24, frames_per_clip=1, workers=1, progress=False)
    assert build_cache(index, clips, size=24, frames_per_clip=1, workers=1, progress=False) == first  # reused
    target = root / clips[0].path
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # as a regeneration would
    assert build_cache(index, clips, size=24, frames_per_clip=1, workers=1, progress=False) != first


def test_cache_build_can_fail_on_the_first_bad_clip(clip_dir):
    root, _ = clip_dir
    index = index_dataset(root, workers=1, progress=False)
    with pytest.raises(media.CorruptMediaError, match=r"video0/bad_audio.mp4: audio stream cannot be decoded"):
        build_cache(index, index.clips, size=32, frames_per_clip=2, workers=1, progress=False, on_bad="fail")


def test_scan_names_folders_and_broken_links(clip_dir):
    report = scan(clip_dir[0], workers=2, progress=False)
    reasons = {b["path"].split("/")[-1]: (b["error"], b["reason"]) for b in report["bad"]}
    assert reasons["folder.mp4"] == ("MissingMediaError", "is a folder, not a media file")
    assert reasons["dangling.mp4"] == ("MissingMediaError", "broken link: its target does not exist")
    assert set(reasons) == set(EXPECTED) | {"partial.mp4", "bad_audio.mp4"}


def test_silencing_decord_keeps_other_threads_output_and_restores_stderr(clip_dir, capfd):
    from concurrent.futures import ThreadPoolExecutor

    bad = clip_dir[0] / "dev/mp4/id09999/video0/partial.mp4"
    before = os.fstat(2).st_ino

    def decode_or_talk(k):
        if k % 2:
            os.write(2, f"line {k} from another thread\n".encode())
        else:
            with pytest.raises(media.CorruptMediaError):
                media.read_frames(bad)

    with ThreadPoolExecutor(4) as threads:
        list(threads.map(decode_or_talk, range(16)))
    assert os.fstat(2).st_ino == before
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == sorted(f"line {k} from another thread" for k in range(1, 16, 2))
