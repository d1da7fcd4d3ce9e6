"""VoxCeleb1 as distributed (wav + VGGFace jpgs + vox1_meta.csv + veri_test.txt + CMPC lists): its
files parsed, a fake tree in that layout (converted from a tiny generated set) indexed, scanned,
trained on and evaluated end to end, bad files listed by name instead of stopping anything."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avlab.data import media, voxceleb1
from avlab.data.manifest import detect_task
from avlab.data.voxceleb import Clip, decode_clip, index_dataset, scan
from avlab.eval.voiceface import list_paths

TINY = dict(identities=8, videos_per_id=2, utts_per_video=2, size=48, seed=11, test_fraction=0.375)
JPGS_PER_UTT = 3  # face crops written per utterance, named <utt>0<k>: the middle one is the lists'
HEADER = "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"


# --- the files' formats ------------------------------------------------------------------------
def test_meta_is_read_as_distributed_and_a_bad_line_is_named(tmp_path):
    meta = tmp_path / voxceleb1.META
    meta.write_text(HEADER + "id10001\tA.J._Buckley\tm\tIreland\tdev\n"
                    "id10170\tCliff_Curtis \tm\tNew Zealand\tdev\n\nid10270\tEartha_Kitt\tf\tUSA\ttest\n")
    people = voxceleb1.read_meta(meta)
    assert people["id10170"] == voxceleb1.Person("id10170", "Cliff_Curtis", "m", "New Zealand", "dev")
    assert [p.set for p in people.values()] == ["dev", "dev", "test"]
    meta.write_text(HEADER + "id10001\tA.J._Buckley\tm\tIreland\tdev\nid10002 A.R._Rahman m India dev\n")
    with pytest.raises(voxceleb1.FormatError, match=r"vox1_meta.csv:3: expected 5 tab-separated fields"):
        voxceleb1.read_meta(meta)
    meta.write_text(HEADER + "id10001\tA.J._Buckley\tm\tIreland\ttrain\n")
    with pytest.raises(voxceleb1.FormatError, match=r":2: Set must be 'dev' or 'test', got 'train'"):
        voxceleb1.read_meta(meta)


def test_veri_test_is_read_and_a_bad_line_is_named(tmp_path):
    path = tmp_path / voxceleb1.VERI_TEST
    path.write_text("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
                    "0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n")
    assert voxceleb1.read_veri_test(path) == [
        voxceleb1.Trial(1, "id10270/x6uYqmx31kE/00001.wav", "id10270/8jEAjG6SegY/00008.wav"),
        voxceleb1.Trial(0, "id10270/x6uYqmx31kE/00001.wav", "id10300/ize_eiCFEg0/00003.wav")]
    for bad in ("1 id10270/x6uYqmx31kE/00001.wav", "yes a.wav b.wav", "1 a.wav b.mp4"):
        path.write_text("1 a.wav b.wav\n" + bad + "\n")
        with pytest.raises(voxceleb1.FormatError, match=r"veri_test.txt:2: expected '<0\|1> "):
            voxceleb1.read_veri_test(path)


def test_identity_splits_are_read_and_a_bad_line_is_named(tmp_path):
    path = tmp_path / voxceleb1.SPLITS_FILE
    path.write_text("A.J._Buckley 1 \nA.R._Rahman 4 \nAaron_Yoo 2 \n")
    assert voxceleb1.read_identity_splits(path) == {"A.J._Buckley": "train", "A.R._Rahman": "unseen_unheard",
                                                    "Aaron_Yoo": "val"}
    path.write_text("A.J._Buckley 5\n")
    with pytest.raises(voxceleb1.FormatError, match=r"identity_splits.txt:1: expected"):
        voxceleb1.read_identity_splits(path)


# --- a hand-made root: splits, spellings of list paths, wav formats ----------------------------------
def _wav(path: Path, seconds: float, rate: int = 16_000, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, subtype=subtype)


def _jpg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=90)


@pytest.fixture
def mini(tmp_path):
    """Two people: one face folder named by the VGGFace1 ID, one by the VoxCeleb1 ID without ``1.6/``;
    an 8 kHz wav, a float wav and a wav of someone not in the metadata."""
    root = tmp_path / "vox1"
    (root / voxceleb1.META).parent.mkdir(parents=True)
    (root / voxceleb1.META).write_text(HEADER + "id10001\tA.J._Buckley\tm\tIreland\tdev\n"
                                       "id10270\tEartha_Kitt\tf\tUSA\ttest\n")
    _wav(root / "wav/id10001/1zcIwhmdeo4/00001.wav", 0.8)
    _wav(root / "wav/id10270/5r0dWxy17C8/00001.wav", 0.8, rate=8_000)
    _wav(root / "wav/id10270/5r0dWxy17C8/00002.wav", 0.8, subtype="FLOAT")
    _wav(root / "wav/id19999/aaaaaaaaaaa/00001.wav", 0.8)
    for k in range(3):
        _jpg(root / f"unzippedFaces/A.J._Buckley/1.6/1zcIwhmdeo4/000{k}375.jpg", np.full((40, 32, 3), 60 * k, np.uint8))
        _jpg(root / f"unzippedFaces/id10270/5r0dWxy17C8/000{k}100.jpg", np.full((40, 32, 3), 200, np.uint8))
    return root


def test_a_hand_made_root_is_indexed_with_its_splits_and_its_bad_wavs_named(mini):
    index = index_dataset(mini, workers=0, progress=False)
    assert [(c.path, c.identity, c.split) for c in index.clips] == [
        ("wav/id10001/1zcIwhmdeo4/00001.wav", "id10001", "train"),
        ("wav/id10270/5r0dWxy17C8/00001.wav", "id10270", "unseen_unheard")]
    assert index.clips[0].n_frames == 20 and index.clips[0].fps == 25.0  # 0.8 s of 25 fps video
    bad = {b["path"]: b for b in index.bad}
    assert "not PCM" in bad["wav/id10270/5r0dWxy17C8/00002.wav"]["reason"]
    assert bad["wav/id19999/aaaaaaaaaaa/00001.wav"]["reason"].startswith("identity id19999 is not in vox1_meta.csv")
    audio, frames = decode_clip(mini, index.clips[1], frames_per_clip=2, size=24)
    assert audio.dtype == np.int16 and len(audio) == 12_800  # 8 kHz resampled to 16 kHz
    assert frames.shape == (2, 24, 24, 3) and (frames > 190).all()  # from the id-named folder
    # The Learnable-PINs splits override the Set column (their unseen-unheard people are dev people).
    (mini / voxceleb1.SPLITS_FILE).write_text("A.J._Buckley 4\nEartha_Kitt 2\n")
    index = index_dataset(mini, workers=0, progress=False)  # the changed split file re-indexes
    assert [c.split for c in index.clips] == ["unseen_unheard", "val"]


def test_the_lists_spellings_of_voice_and_face_paths_resolve(mini):
    lay = voxceleb1.layout(mini)
    clip = "wav/id10001/1zcIwhmdeo4/00001.wav"
    for spelling in ("id10001/1zcIwhmdeo4/00001.wav", clip, "A.J._Buckley/1zcIwhmdeo4/00001.wav",
                     "A.J._Buckley/1zcIwhmdeo4_0000001.wav"):
        assert lay.voice_clip(spelling) == clip, spelling
    assert lay.voice_clip("id10001/00001.wav") is None
    jpg = mini / "unzippedFaces/A.J._Buckley/1.6/1zcIwhmdeo4/0001375.jpg"
    for spelling in ("A.J._Buckley/1.6/1zcIwhmdeo4/0001375.jpg", "A.J._Buckley/1zcIwhmdeo4/0001375.jpg",
                     "id10001/1.6/1zcIwhmdeo4/0001375.jpg", "unzippedFaces/A.J._Buckley/1.6/1zcIwhmdeo4/0001375.jpg"):
        assert lay.face_file(spelling) == (jpg, "id10001"), spelling
    assert lay.face_file("Eartha_Kitt/1.6/5r0dWxy17C8/0000100.jpg")[1] == "id10270"  # an id-named folder
    assert lay.face_file("A.J._Buckley/1.6/1zcIwhmdeo4/0009999.jpg") is None
    assert lay.face_file("Nobody/1.6/1zcIwhmdeo4/0001375.jpg") is None


# --- a fake VoxCeleb1 tree from the generator ------------------------------------------------------
def _name(identity: str) -> str:
    """A made-up VGGFace1 ID in the real ones' style (initials with dots, underscores)."""
    return f"{chr(65 + int(identity[2:]) % 26)}.J._Person{identity[2:]}"


def _jpg_name(utt: str, k: int) -> str:
    return f"{int(utt):04d}{k:03d}.jpg"


def _voice(rel_mp4: str, pins: bool = False) -> str:
    """A generated clip's voice path as the real lists write it: ``<id>/<video>/<utt>.wav`` (CMPC) or
    ``<name>/<video>_<7-digit utt>.wav`` (Learnable-PINs verification lists)."""
    ident, video, utt = Path(rel_mp4).parts[-3], Path(rel_mp4).parts[-2], Path(rel_mp4).stem
    return f"{_name(ident)}/{video}_{int(utt):07d}.wav" if pins else f"{ident}/{video}/{utt}.wav"


def _face(rel_mp4: str, pins: bool = False) -> str:
    """A generated clip's face path as the real lists write it: a VGGFace jpg of its video."""
    ident, video, utt = Path(rel_mp4).parts[-3], Path(rel_mp4).parts[-2], Path(rel_mp4).stem
    return f"{_name(ident)}/{'' if pins else '1.6/'}{video}/{_jpg_name(utt, JPGS_PER_UTT // 2)}"


def _convert_lists(src: Path, root: Path) -> None:
    """The generator's lists with VoxCeleb1's paths; retrieval lists in CMPC's tab-separated form and
    the unseen-unheard verification lists in Learnable PINs' spellings."""
    (root / "lists").mkdir()
    for path in (src / "lists").iterdir():
        out = root / "lists" / path.name
        if path.name.startswith("veriflist"):
            pins = "unseenunheard" in path.name
            rows = [r[:4] + [_voice(r[4], pins), _face(r[5], pins)] for r in csv.reader(path.open())]
            with open(out, "w", newline="") as f:
                csv.writer(f).writerows(rows)
        elif path.name.startswith("matching"):
            v2f = "_v2f_" in path.name
            rows = [line.split() for line in path.read_text().splitlines()]
            out.write_text("".join(" ".join([(_voice if v2f else _face)(r[0])]
                                            + [(_face if v2f else _voice)(c) for c in r[1:]]) + "\n" for r in rows))
        elif path.name.startswith("retrieval"):
            convert = _voice if "_wav_" in path.name else _face
            rows = list(csv.reader(path.open()))[1:]
            out.write_text(f"VoxCeleb1 ID\t{'wav' if '_wav_' in path.name else 'jpg'}\n"
                           + "".join(f"{ident}\t{convert(p)}\n" for p, ident in rows))


def _write_veri_test(rows: list[dict], root: Path) -> None:
    """Same-speaker and different-speaker trials over the test identities' utterances, as veri_test.txt."""
    test = [r for r in rows if r["id_split"] == "test"]
    lines = []
    for r in test:
        same = [o for o in test if o["identity"] == r["identity"] and o["path"] != r["path"]]
        other = [o for o in test if o["identity"] != r["identity"]]
        lines += [f"1 {_voice(r['path'])} {_voice(same[0]['path'])}",
                  f"0 {_voice(r['path'])} {_voice(other[0]['path'])}"]
    (root / voxceleb1.VERI_TEST).write_text("\n".join(lines) + "\n")


def _convert_clip(src: Path, root: Path, r: dict) -> None:
    ident, video, utt = r["identity"], r["video"], r["utt"]
    sf.write(root / "wav" / ident / video / f"{utt}.wav", media.read_audio(src / r["path"]), 16_000, subtype="PCM_16")
    frames = media.read_frames(src / r["path"], positions=np.linspace(0.2, 0.8, JPGS_PER_UTT))
    for k, rgb in enumerate(frames):
        _jpg(root / "unzippedFaces" / _name(ident) / "1.6" / video / _jpg_name(utt, k), rgb)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """A generated tiny set rewritten in VoxCeleb1's layout, with known damage among its training
    identities: an empty face folder, a garbage wav, a video whose faces are only in its mp4s and a
    garbage first jpg. The generator's manifest, meta.csv and oracle are left behind."""
    from avlab.data.synth.talking_faces import TalkingFacesConfig
    from avlab.tasks.voiceface import generate_talking_faces

    src = generate_talking_faces(TalkingFacesConfig(**TINY), tmp_path_factory.mktemp("gen") / "tf", workers=2,
                                 progress=False)
    rows = list(csv.DictReader((src / "meta.csv").open()))
    root = tmp_path_factory.mktemp("vox1") / "VoxCeleb1"
    for r in rows:
        (root / "wav" / r["identity"] / r["video"]).mkdir(parents=True, exist_ok=True)
        _convert_clip(src, root, r)
    people = sorted({(r["identity"], r["id_split"]) for r in rows})
    (root / voxceleb1.META).write_text(HEADER + "".join(
        f"{i}\t{_name(i)}\tm\tNowhere\t{'test' if s == 'test' else 'dev'}\n" for i, s in people))
    _convert_lists(src, root)
    _write_veri_test(rows, root)

    train_videos = sorted({(r["identity"], r["video"]) for r in rows if r["id_split"] != "test"})
    (empty_id, empty_video), (wav_id, wav_video), (mp4_id, mp4_video), (jpg_id, jpg_video) = train_videos[0:8:2]
    faces = lambda i, v: root / "unzippedFaces" / _name(i) / "1.6" / v  # noqa: E731
    shutil.rmtree(faces(empty_id, empty_video))
    faces(empty_id, empty_video).mkdir()
    (root / "wav" / wav_id / wav_video / "00001.wav").write_bytes(b"not a wav file " * 64)
    shutil.rmtree(faces(mp4_id, mp4_video))
    for r in rows:
        if (r["identity"], r["video"]) == (mp4_id, mp4_video):
            dst = root / "mp4" / mp4_id / mp4_video / f"{r['utt']}.mp4"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / r["path"], dst)
    bad_jpg = faces(jpg_id, jpg_video) / _jpg_name("00001", 0)
    bad_jpg.write_bytes(b"\xff\xd8 not a jpeg")
    return {"root": root, "rows": rows, "empty": faces(empty_id, empty_video), "empty_video": (empty_id, empty_video),
            "bad_wav": f"wav/{wav_id}/{wav_video}/00001.wav", "mp4_video": (mp4_id, mp4_video),
            "bad_jpg": str(bad_jpg.relative_to(root))}


def _clip_path(r: dict) -> str:
    return f"wav/{r['identity']}/{r['video']}/{r['utt']}.wav"


def test_the_voice_face_task_recognises_the_layout(fake):
    assert not (fake["root"] / "avlab-dataset.json").exists()
    assert detect_task(fake["root"]) == "voice-face"


def test_index_finds_every_utterance_with_its_identity_and_split_and_lists_the_bad_ones(fake):
    root, rows = fake["root"], fake["rows"]
    index = index_dataset(root, rescan=True, workers=2, progress=False)
    empty = str(fake["empty"].relative_to(root))
    bad = {b["path"]: b for b in index.bad}
    assert bad[fake["bad_wav"]]["reason"] == "cannot be read as WAV (Format not recognised)"
    in_empty = [_clip_path(r) for r in rows if (r["identity"], r["video"]) == fake["empty_video"]]
    assert len(in_empty) == TINY["utts_per_video"]
    for path in in_empty:
        assert bad[path] == {"path": path, "error": "MissingMediaError",
                             "reason": f"face folder {empty}/ holds no .jpg frames"}
    assert set(bad) == {fake["bad_wav"], *in_empty}
    split = {"test": "unseen_unheard", "val": "train", "train": "train"}  # Set dev → train, test → unseen_unheard
    want = {_clip_path(r): (r["identity"], r["video"], r["utt"], split[r["id_split"]])
            for r in rows if _clip_path(r) not in bad}
    assert {c.path: (c.identity, c.video, c.utt, c.split) for c in index.clips} == want
    assert {c.identity for c in index.split("unseen_unheard")} == {r["identity"] for r in rows
                                                                   if r["id_split"] == "test"}


def test_scan_names_the_corrupt_wav_the_empty_face_folder_and_the_damaged_jpg(fake, capsys):
    from avlab.cli import main as cli

    root = fake["root"]
    report = scan(root, workers=2, progress=False)
    assert report["n_files"] == len(fake["rows"])
    reasons = {b["path"]: b["reason"] for b in report["bad"]}
    assert "Format not recognised" in reasons[fake["bad_wav"]]
    assert sum(str(fake["empty"].relative_to(root)) in r for r in reasons.values()) == TINY["utts_per_video"]
    notes = [n for w in report["warned"] for n in w["notes"]]
    assert notes and all(fake["bad_jpg"] in n and "cannot be decoded" in n for n in notes)
    assert cli(["scan", str(root), "--quiet", "--workers", "2"]) == 1  # bad files: exit status 1, listed
    out = capsys.readouterr().out
    assert f"BAD {fake['bad_wav']}: CorruptMediaError: cannot be read as WAV" in out


def test_a_clip_whose_video_has_no_jpgs_takes_its_faces_from_its_mp4(fake):
    root, (ident, video) = fake["root"], fake["mp4_video"]
    clip = Clip(f"wav/{ident}/{video}/00001.wav", ident, video, "00001", "train", 50, 25.0)
    notes = []
    audio, frames = decode_clip(root, clip, frames_per_clip=3, size=32, notes=notes)
    assert frames.shape == (3, 32, 32, 3) and frames.std() > 5 and not notes
    assert len(audio) == len(sf.read(root / clip.path)[0])


@pytest.mark.slow
def test_train_and_evaluate_end_to_end_on_the_fake_tree(fake, tmp_path):
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import TrainConfig, train

    root = fake["root"]
    cfg = TrainConfig(method="cid", data=str(root), out=str(tmp_path / "run"), epochs=1, batch_size=8, workers=1,
                      task_args={"face_size": 48, "crop_seconds": 1.0})
    with pytest.warns(RuntimeWarning, match="could not be decoded and are left out") as caught:
        run = train(cfg, progress=False)  # 3 of the training identities' ~20 clips are bad: more than 5 %
        res = evaluate_run(run, progress=False)
    assert all(fake["bad_wav"] in str(w.message) for w in caught if "left out" in str(w.message))
    bad_clips = json.loads((Path(run) / "bad_clips.json").read_text())
    assert {b["path"] for b in bad_clips["bad"]} == {b["path"] for b in index_dataset(root, progress=False).bad}
    assert json.loads((Path(run) / "eval.json").read_text())["metrics"] == res["metrics"]
    unseen = res["metrics"]["unseen_unheard"]
    assert 0.0 <= unseen["verification"]["U"]["auc"] <= 1.0
    assert set(unseen["matching_1to2"]["v2f"]) >= {"U"} and set(unseen["retrieval_map"]) == {"v2f", "f2v"}
    assert "unseen_unheard" in res["ci"] and "unseen_unheard" in res["chance"]
    # Every list path resolved (CMPC, Learnable-PINs and tab-separated spellings alike) except those of
    # the damaged files: voices of clips listed as bad, faces of the videos without jpgs.
    voices, faces = list_paths(root / "lists")
    lay = voxceleb1.layout(root)
    index_bad = {b["path"] for b in index_dataset(root, progress=False).bad}
    assert res["missing_list_paths"] == {"voice": sum(lay.voice_clip(v) in index_bad for v in voices),
                                         "face": sum(lay.face_file(f) is None for f in faces)}
    assert res["missing_list_paths"]["face"] > 0  # the empty and the mp4-only videos' jpgs do not exist
    n_test = sum(r["id_split"] == "test" for r in fake["rows"])
    sv = res["speaker_verification"]
    assert sv["list"] == "veri_test.txt" and sv["n_trials"] == sv["n_scored"] == 2 * n_test
    assert 0.0 <= sv["auc"] <= 1.0 and 0.0 <= sv["eer"] <= 1.0
