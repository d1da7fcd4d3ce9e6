"""Shared fixtures: a tiny talking-faces set generated once per test session."""
import os

import pytest

from avlab.data.synth.talking_faces import TalkingFacesConfig
from avlab.tasks.voiceface import generate_talking_faces

TINY = dict(identities=12, videos_per_id=2, utts_per_video=3, size=48, seed=7, val_fraction=0.2)  # 2 val identities


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Index and clip caches go to a per-session folder, never the user's ~/.cache."""
    os.environ["AVLAB_CACHE"] = str(tmp_path_factory.mktemp("avlab-cache"))
    yield


@pytest.fixture(scope="session")
def tiny_cfg():
    return TalkingFacesConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory, tiny_cfg):
    return generate_talking_faces(tiny_cfg, tmp_path_factory.mktemp("tiny") / "talking-faces", workers=2,
                                  progress=False)


@pytest.fixture(scope="session")
def tiny_lip_words(tmp_path_factory):
    """The lip-words ``tiny`` profile (6 words, 8 speakers, 78 clips), generated once per session."""
    from avlab.tasks.lipreading import generate_lip_words
    from avlab.data.synth.lip_words import LipWordsConfig

    return generate_lip_words(LipWordsConfig.from_profile("tiny", seed=3), tmp_path_factory.mktemp("lip") / "lip-words",
                              workers=2, progress=False, profile="tiny")


@pytest.fixture(scope="session")
def tiny_adc_run(tmp_path_factory, tiny_lip_words):
    """An ADC-SSL run on the tiny lip-words set, trained briefly and evaluated (eval.json,
    lipreading.npz, metrics.jsonl) — for the lip-reading notebook and demo tests."""
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "adc-ssl"
    cfg = TrainConfig(method="adc-ssl", data=str(tiny_lip_words), out=str(out), epochs=2, batch_size=8, workers=0,
                      threads=1, method_args={"ramp_epochs": 1.0}, task_args={"roi_size": 24, "crop_size": 20})
    train(cfg, progress=False)
    evaluate_run(out, progress=False, backend_epochs=3)
    return out


@pytest.fixture(scope="session")
def tiny_sounding_objects(tmp_path_factory):
    """A tiny sounding-objects set (4 classes × 8 clips, 64² frames), generated once per session."""
    from avlab.data.synth.sounding_objects import SoundingObjectsConfig
    from avlab.tasks.localisation import generate_sounding_objects

    cfg = SoundingObjectsConfig(classes=4, clips_per_class=8, size=64, seed=3)
    return generate_sounding_objects(cfg, tmp_path_factory.mktemp("so") / "sounding-objects", workers=2,
                                     progress=False)


@pytest.fixture(scope="session")
def tiny_cmac_run(tmp_path_factory, tiny_sounding_objects):
    """A CMAC run on the tiny sounding-objects set, trained briefly and evaluated (eval.json and the
    per-clip attention maps in attention.npz) — for the attention notebook and demo tests."""
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "cmac"
    train(TrainConfig(method="cmac", data=str(tiny_sounding_objects), out=str(out), epochs=2, batch_size=8, workers=0,
                      threads=1), progress=False)
    evaluate_run(out, progress=False, device="cpu", n_boot=20)
    return out


@pytest.fixture(scope="session")
def tiny_cmpc_run(tmp_path_factory, tiny_set):
    """A CMPC run on the tiny set that clustered and was evaluated (clusters, embeddings, eval.json)."""
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "cmpc"
    cfg = TrainConfig(method="cmpc", data=str(tiny_set), out=str(out), epochs=2, batch_size=8, workers=1,
                      task_args={"face_size": 48, "crop_seconds": 1.0},
                      method_args={"cluster_warmup_epochs": 1, "num_prototypes": [3, 5]})
    train(cfg, progress=False)
    evaluate_run(out, progress=False)
    return out



@pytest.fixture(scope="session")
def tiny_test_embeddings(tiny_cmpc_run):
    """[(clip, voice, face)] of every unseen-unheard clip, embedded by the evaluation's own code."""
    from avlab.data.features import MelConfig
    from avlab.data.voxceleb import VoiceFaceDataset
    from avlab.runs import load_run
    from avlab.tasks.voiceface.protocol import embed_dataset

    cfg, method = load_run(tiny_cmpc_run)
    t = cfg.task_config()
    ds = VoiceFaceDataset(cfg.data, ("unseen_unheard",), face_size=t.face_size, crop_seconds=t.crop_seconds,
                          train=False, mel=MelConfig(n_mels=t.n_mels), progress=False)
    voice, face = embed_dataset(method, ds, progress=False)
    return list(zip(ds.clips, voice, face))


@pytest.fixture(scope="session")
def demo_server(tiny_cmpc_run, tmp_path_factory):
    """``avlab demo`` on the tiny CMPC run as a real server on a free port (1 MB upload limit)."""
    from types import SimpleNamespace

    from avlab.demo.process import demo_process

    log = tmp_path_factory.mktemp("demo") / "server.log"
    env = {"GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio-temp"))}
    args = ["--max-upload-mb", "1", "--gallery-identities", "8", "--workers", "1"]
    with demo_process(tiny_cmpc_run, log, args, env=env) as (url, port, proc):
        yield SimpleNamespace(url=url, port=port, run=tiny_cmpc_run, log=log, proc=proc)
