"""Ceilings for sounding-objects under the generator's own model (DESIGN §3).

* **Localisation**: a model that knows the sounding object's box exactly, but outputs a map at a
  given grid resolution — the box averaged onto the grid, resized and thresholded by the protocol.
  At full resolution this is 1; at a model's feature resolution (8×8 of a 64² frame) it is what
  map quantisation alone costs.
* **Classification from the image** (closed form): one frame shows m objects and cannot tell which
  one sounds (distractors move too) nor whether the sound is off screen. By symmetry every visible
  class has P(on screen, m)/m and every other class P(off screen, m)/(C − m), so the Bayes
  accuracy is Σ_m max(P(on, m)/m, P(off, m)/(C − m)), with P(on, m) = (1 − p_off)·P(k = m − 1),
  P(off, m) = p_off·P(k = m), k ~ U{1..max_distractors}. :func:`simulate_image_accuracy` checks it
  on sampled scenes.
* **Classification from the sound**: a class is a deterministic function of its bands, tonality
  and temporal pattern, all above the noise floor (SNR ≥ 10 dB); the bound 1.0 is reported.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avlab.eval.localisation import box_prior_map, clip_ciou, summary

GRIDS = (4, 6, 8, 12, 16)  # the maps of stride-8 encoders on 32², 48², 64², 96², 128² frames


def image_class_ceiling(classes: int, max_distractors: int, offscreen: float) -> float:
    acc = 0.0
    p_k = 1.0 / max_distractors
    for m in range(1, max_distractors + 2):
        p_on = (1 - offscreen) * (p_k if 1 <= m - 1 <= max_distractors else 0.0)
        p_off = offscreen * (p_k if 1 <= m <= max_distractors else 0.0)
        acc += max(p_on / m, p_off / (classes - m) if classes > m else 0.0)
    return float(acc)


def bayes_image_guess(scene, classes: int, max_distractors: int, offscreen: float, rng) -> int:
    """The Bayes classifier's guess from what one frame shows (the visible classes only)."""
    visible = [o.cls for o in scene.objects]
    m, p_k = len(visible), 1.0 / max_distractors
    p_on = (1 - offscreen) * (p_k if 1 <= m - 1 <= max_distractors else 0.0) / m
    p_off = offscreen * (p_k if 1 <= m <= max_distractors else 0.0) / max(classes - m, 1)
    pool = visible if p_on >= p_off else [c for c in range(classes) if c not in visible]
    return int(rng.choice(pool))


def simulate_image_accuracy(cfg, n: int = 4000, seed: int = 0) -> float:
    from avlab.data.synth.sounding_objects import sample_scene

    rng = np.random.default_rng(seed)
    hits = [bayes_image_guess(s, cfg.classes, cfg.max_distractors, cfg.offscreen_fraction, rng) == s.cls
            for s in (sample_scene(cfg, i) for i in range(n))]
    return float(np.mean(hits))


def localisation_ceilings(root: Path, size: int) -> dict:
    from avlab.data.vggsound import read_boxes

    boxes = {f: [[v * size for v in b] for b in bb] for f, bb in read_boxes(root).items()}
    out = {}
    for g in (*GRIDS, size):
        key = "exact" if g == size else f"{g}x{g}"
        maps = {f: box_prior_map(b, (size, size), (g, g)) for f, b in boxes.items()}
        out[key] = {thr: summary([clip_ciou(maps[f], b, (size, size), thr) for f, b in boxes.items()])
                    for thr in ("value", "median")}
    return out


def oracle_metrics(root: str | Path) -> dict:
    from avlab.data.synth.sounding_objects import SoundingObjectsConfig

    root = Path(root)
    stamp = json.loads((root / "synth_config.json").read_text())
    cfg = SoundingObjectsConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in stamp.items()
                                   if k != "benchmark"})
    return {"localisation": localisation_ceilings(root, cfg.size),
            "classification": {"image": image_class_ceiling(cfg.classes, cfg.max_distractors, cfg.offscreen_fraction),
                               "audio": 1.0},
            "notes": "localisation: the true box as a map at each grid resolution; classification: Bayes "
                     "accuracy from one frame (closed form), and the bound 1 from the sound"}


def write_oracle(root: str | Path) -> dict:
    metrics = oracle_metrics(root)
    Path(root, "oracle.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
    return metrics
