"""The sound-localisation protocol on a trained method: ``RUN/eval.json`` and ``RUN/attention.npz``.

* **Localisation** on the annotated test clips (VGG-SS boxes on the key frame): cIoU@0.5, AUC
  and mean cIoU (:mod:`avlab.eval.localisation`; ``threshold="value"`` by default, the released
  LVS / EZ-VSL code's median reading beside it) from each spatial map the method records: β_v
  (audio-guided) and α_v (vision alone) — recorded with forward hooks
  (:class:`~avlab.models.recorder.Recorder`), so no method changes its forward for this. A method
  without attention modules (e.g. ``cid``) is scored on the cosine map between its audio
  embedding and its visual feature map (LVS's similarity map), as ``beta_v``.
* **Frequency grounding** (synthetic sets, whose bands are known): the share of α_a's (and β_a's)
  mass inside the true bands and the AP of ranking frequency rows by attention.
* **Probes**: logistic regression and 5-NN (cosine) class accuracy from each modality's frozen
  embedding, trained on the train split, scored on the test split. The audio embedding's
  logistic regression is kept (``RUN/class_probe.npz``): the demo names a clip's class with it.
* Beside each: chance (centre-prior and uniform maps; uniform frequency attention and the
  expected AP of a random ranking; 1/#classes), the oracle (``oracle.json``) and 95 % bootstrap
  intervals over test clips for the localisation figures.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from avlab.device import to_device
from avlab.eval import localisation as L
from avlab.eval.bootstrap import percentile_interval
from avlab.eval.chance import expected_random_ap
from avlab.models.recorder import Recorder

SPATIAL, SPECTRAL = ("beta_v", "alpha_v"), ("alpha_a", "beta_a")
CLASS_PROBE_FILE = "class_probe.npz"  # the audio embedding's linear probe, for the demo's class
DEFINITION = ("cIoU = sum(pred*gt) / (sum(gt) + sum(pred*[gt=0])); heatmap resized (bilinear) to the frame, "
              "min-max normalised, pred = value >= 0.5 ('value'; the LVS/EZ-VSL code's 'median' = top 50 % of "
              "pixels also given); cIoU@0.5 = share of clips with cIoU >= 0.5; AUC = trapezoid area under the "
              "success rate over thresholds 0, 0.05, ..., 1 (as LVS / EZ-VSL)")


def _device(method) -> torch.device:
    return next(method.parameters()).device


def _roles(method) -> tuple[str, str]:
    kinds = {s.kind: m for m, s in method.spec.modalities.items()}
    return kinds["image"], kinds["spectrogram"]


@torch.no_grad()
def similarity_map(method, vis: str, aud: str, batch: dict) -> torch.Tensor:
    """(B, h, w) cos(a, V_hw) of a two-stream method whose visual encoder has ``feature_map``."""
    enc = method.encoders[vis]
    if not hasattr(enc, "feature_map"):
        raise ValueError(f"method {method.name!r}: its {vis} encoder gives no feature map to localise with")
    fmap = enc.fc(enc.feature_map(batch[vis]).movedim(1, -1)).movedim(-1, 1)  # (B, D, h, w) embedding space
    a = method.embed(aud, batch[aud])
    return torch.einsum("bd,bdhw->bhw", a, F.normalize(fmap, dim=1))


@torch.no_grad()
def attention_maps(method, batch: dict) -> dict[str, torch.Tensor]:
    """The method's attention maps by short name (``beta_v`` …), recorded with forward hooks."""
    vis, aud = _roles(method)
    try:
        with Recorder(method) as rec:
            method(batch)
    except ValueError:  # no attention modules: the similarity map stands for the audio-guided one
        return {"beta_v": similarity_map(method, vis, aud, batch)}
    return {name.rsplit(".", 1)[-1]: m for name, m in rec.maps.items()}


@torch.no_grad()
def clip_outputs(method, batch: dict) -> dict[str, torch.Tensor]:
    """One batch's embeddings (``emb.<modality>``) and attention maps: what the protocol scores, per
    batch, so the demo shows a clip exactly as it was evaluated."""
    vis, aud = _roles(method)
    return {f"emb.{vis}": method.embed(vis, batch[vis]), f"emb.{aud}": method.embed(aud, batch[aud]),
            **attention_maps(method, batch)}


@torch.no_grad()
def run_clips(method, ds, batch_size: int = 32, progress: bool = True) -> dict:
    """Embeddings of both modalities and every attention map of ``ds``'s clips (evaluation views)."""
    method.eval()
    dev = _device(method)
    out: dict[str, list] = {}
    for start in tqdm(range(0, len(ds), batch_size), desc="embedding clips", disable=not progress):
        batch = to_device(ds.collate([ds[i] for i in range(start, min(start + batch_size, len(ds)))]), dev)
        for k, v in clip_outputs(method, batch).items():
            out.setdefault(k, []).append(v.float().cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def _pixel_boxes(root: Path, ds, size: int) -> dict[int, list]:
    from avlab.data.vggsound import read_boxes

    boxes = read_boxes(root)
    return {i: [[v * size for v in b] for b in boxes[c.file]] for i, c in enumerate(ds.clips) if c.file in boxes}


def _bootstrap(cious: np.ndarray, n_boot: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, 14])
    reps = [L.summary(cious[rng.integers(len(cious), size=len(cious))]) for _ in range(n_boot)]
    return {k: v for k, v in percentile_interval([{k: r[k] for k in ("ciou@0.5", "auc", "mean_ciou")}
                                                  for r in reps]).items()}


def localisation(maps: dict, boxes: dict[int, list], size: int, n_boot: int, seed: int):
    """(metrics, chance, intervals, per-clip cIoU) of every spatial map on the annotated clips."""
    idx = sorted(boxes)
    shape = (size, size)
    metrics, ci, per_clip = {}, {}, {}
    for name in SPATIAL:
        if name not in maps or not idx:
            continue
        c = {thr: np.array([L.clip_ciou(maps[name][i], boxes[i], shape, thr) for i in idx]) for thr in ("value", "median")}
        metrics[name] = {**L.summary(c["value"]), "median": L.summary(c["median"])}
        ci[name] = _bootstrap(c["value"], n_boot, seed)
        per_clip[name] = c["value"]
    grid = next((maps[n].shape[1:] for n in SPATIAL if n in maps), (8, 8))
    chance = {"centre_prior": L.summary([L.clip_ciou(L.centre_prior(grid), boxes[i], shape) for i in idx]),
              "uniform": L.summary([L.clip_ciou(np.ones(grid), boxes[i], shape) for i in idx])}
    return metrics, chance, ci, per_clip


def read_bands(root: Path) -> dict[str, list]:
    """{clip file: its sound's true frequency bands in Hz} from a synthetic set's ``meta.csv`` (empty: unknown)."""
    path = Path(root) / "meta.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {r["file"]: json.loads(r["bands_hz"]) for r in csv.DictReader(f) if r.get("bands_hz")}


def frequency(maps: dict, ds, root: Path, n_mels: int, sample_rate: int):
    """(metrics, chance) of frequency grounding over the clips whose bands are known."""
    bands = read_bands(root)
    idx = [i for i, c in enumerate(ds.clips) if c.file in bands]
    metrics, chance = {}, {}
    for name in SPECTRAL:
        if name not in maps or not idx:
            continue
        n_bins = maps[name].shape[1]
        edges = L.mel_bin_edges_hz(n_mels, sample_rate, n_bins)
        masks = [L.band_mask(bands[ds.clips[i].file], edges) for i in idx]
        metrics[name] = {"mass": float(np.mean([L.band_mass(maps[name][i], m) for i, m in zip(idx, masks)])),
                         "ap": float(np.nanmean([L.band_ap(maps[name][i], m) for i, m in zip(idx, masks)]))}
        usable = [m for m in masks if 0 < m.sum() < len(m)]
        chance = {"mass": float(np.mean([m.mean() for m in masks])),
                  "ap": float(np.mean([expected_random_ap(int(m.sum()), len(m)) for m in usable])) if usable else None}
    return metrics, chance


def probes(train: dict, test: dict, y_train: np.ndarray, y_test: np.ndarray, modalities, k: int = 5,
           fitted: dict | None = None) -> dict:
    """Linear (logistic regression) and kNN (cosine) accuracy per modality's frozen embedding; the
    fitted logistic regressions go into ``fitted`` by modality when it is given."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    out = {"linear": {}, "knn": {}}
    for m in modalities:
        xtr, xte = train[f"emb.{m}"], test[f"emb.{m}"]
        lin = LogisticRegression(max_iter=2000, C=10.0).fit(xtr, y_train)
        out["linear"][m] = float((lin.predict(xte) == y_test).mean())
        if fitted is not None:
            fitted[m] = lin
        knn = KNeighborsClassifier(n_neighbors=min(k, len(xtr)), metric="cosine").fit(xtr, y_train)
        out["knn"][m] = float((knn.predict(xte) == y_test).mean())
    return out


def save_class_probe(run: Path, probe, modality: str, classes: list[str]) -> Path:
    """``class_probe.npz``: a fitted logistic regression's ``coef`` and ``intercept`` (sklearn's
    shapes), the ``classes`` its outputs stand for (names) and the ``modality`` it reads — kept so the
    demo's class is the one the ``probe/linear/<modality>`` figure scored, with no refitting."""
    path = Path(run) / CLASS_PROBE_FILE
    np.savez(path, coef=probe.coef_, intercept=probe.intercept_, modality=np.array(modality),
             classes=np.array([classes[int(c)] for c in probe.classes_]))
    return path


def save_attention(run: Path, ds, maps: dict, boxes: dict[int, list], size: int) -> Path:
    """``attention.npz``: per evaluated clip its file, label, GT box (pixels on the key frame, NaN
    when none) and every map float16 at feature resolution; ``image_size`` the frame side."""
    box = np.full((len(ds), 4), np.nan, np.float32)
    for i, b in boxes.items():
        box[i] = b[0]
    path = run / "attention.npz"
    np.savez_compressed(path, files=np.array([c.file for c in ds.clips]), labels=np.array([c.label for c in ds.clips]),
                        paths=np.array([c.path for c in ds.clips]), boxes=box, image_size=np.array(size),
                        **{k: v.astype(np.float16) for k, v in maps.items() if k in SPATIAL + SPECTRAL})
    return path


def add_reference_per_metric(chance: dict, metrics: dict, class_chance: float) -> None:
    """Chance under each metric's own key, in place, so tables and the run card put it beside the
    metric: every spatial map's figures are the centre prior's (the stronger of the two reference
    maps on centred objects), every frequency map's the uniform attention's, every probe 1/classes."""
    loc, freq = chance.get("localisation", {}), chance.get("frequency", {})
    for name in metrics.get("localisation", {}):
        loc[name] = {k: v for k, v in loc["centre_prior"].items() if k != "n"}
    for name in metrics.get("frequency", {}):
        freq[name] = {k: freq[k] for k in ("mass", "ap") if k in freq}
    chance["probe"].update({kind: {m: class_chance for m in accs} for kind, accs in metrics.get("probe", {}).items()})


def add_oracle_per_metric(oracle: dict, metrics: dict, map_size: list) -> None:
    """The oracle under each metric's key, in place: a spatial map of the method's resolution holding
    the true box (``oracle.json``'s grid of that size, the 'value' reading) and the classification
    ceilings for the probes; ``oracle.json``'s own entries stay."""
    grid = oracle.get("localisation", {}).get("x".join(map(str, map_size)), {}).get("value")
    if grid is not None:
        for name in metrics.get("localisation", {}):
            oracle["localisation"][name] = {k: v for k, v in grid.items() if k != "n"}
    ceilings = oracle.get("classification", {})
    oracle["probe"] = {kind: {m: ceilings[m] for m in accs if m in ceilings}
                       for kind, accs in metrics.get("probe", {}).items()}


def evaluate(run: Path, cfg, method, root: Path, progress: bool = True, n_boot: int = 200,
             batch_size: int = 32) -> dict:
    from avlab.registry import TASKS

    run, root = Path(run), Path(root)
    task, tcfg = TASKS.get(cfg.task), cfg.task_config()
    test = task.dataset(root, tcfg, ("test",), train=False, workers=cfg.n_workers, progress=progress)
    train = task.dataset(root, tcfg, ("train",), train=False, workers=cfg.n_workers, progress=progress)
    out_test = run_clips(method, test, batch_size, progress)
    out_train = run_clips(method, train, batch_size, progress)
    maps = {k: v for k, v in out_test.items() if not k.startswith("emb.")}
    boxes = _pixel_boxes(root, test, tcfg.image_size)
    loc, loc_chance, ci, per_clip = localisation(maps, boxes, tcfg.image_size, n_boot, cfg.seed)
    freq, freq_chance = frequency(maps, test, root, tcfg.n_mels, test.mel.sample_rate)
    y_tr = np.array([train.label_of[c.label] for c in train.clips])
    y_te = np.array([test.label_of[c.label] for c in test.clips])
    fitted = {}
    probe = probes(out_train, out_test, y_tr, y_te, method.spec.modalities, fitted=fitted)
    aud = _roles(method)[1]
    save_class_probe(run, fitted[aud], aud, train.classes)
    save_attention(run, test, maps, boxes, tcfg.image_size)
    result = {"run": str(run), "method": cfg.method, "task": cfg.task, "data": str(root), "definition": DEFINITION,
              "n_test_clips": len(test), "n_annotated": len(boxes),
              "map_size": list(next((maps[n].shape[1:] for n in SPATIAL if n in maps), [])),
              "metrics": {"test": {"localisation": loc, "frequency": freq, "probe": probe}},
              "chance": {"test": {"localisation": loc_chance, "frequency": freq_chance,
                                  "probe": {"classes": 1.0 / test.n_classes}}},
              "ci": {"test": {"localisation": ci}}}
    add_reference_per_metric(result["chance"]["test"], result["metrics"]["test"], 1.0 / test.n_classes)
    if (root / "oracle.json").exists():
        result["oracle"] = {"test": json.loads((root / "oracle.json").read_text())}
        add_oracle_per_metric(result["oracle"]["test"], result["metrics"]["test"], result["map_size"])
    (run / "eval.json").write_text(json.dumps(result, indent=1))
    return result
