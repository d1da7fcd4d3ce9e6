"""CMAC: cross-modal attention consistency (Min et al., arXiv 2106.06939) — our reading of DESIGN §2.3.

No code is public and only the abstract is available, so every concrete choice is an assumption,
each an option (``Config``, saved in the run's ``config.json``) with DESIGN's default:

* encoders keep maps: the visual encoder gives V (D×H×W, one frame), the audio encoder on log-mel
  gives A (D×F, pooled over time); both in the loss space (the encoder's linear layer, and the
  shared projection if any, applied at every position). Defaults ``resnet_tiny_map`` (8×8 of a
  64² frame) and ``resnet_tiny_freq`` (16 rows of 64 mels), unless ``--encoder`` names others;
* clip embeddings v = mean_hw V, a = mean_f A; in the contrast's pair score (v_i, a_j) the visual side
  is, by default, V_i's best-matching position (``visual_pool="max"``: cos(a_j, V_i,hw) maximised over
  positions, EZ-VSL's multiple-instance score), or V_i pooled by β_v(a_j, V_i) (``audio_guided``), or
  v_i (``mean``). DESIGN leaves this open; with ``mean`` nothing trains β_v toward the object (no
  run of ours localised with it; audit in README), per-pair pooling does, and ``max`` is the cheaper;
* the visual encoder pads with ``visual_padding="replicate"`` (zero padding gives every map a border
  code that β_v locked onto; DESIGN is silent);
* α_v = softmax over H·W of a learned 1×1 scorer on V (vision alone);
  β_v = softmax over H·W of cos(a, V_hw)/τ_att (audio-guided target);
* α_a = softmax over F of a learned scorer on A (audio alone);
  β_a = softmax over F of cos(v, A_f)/τ_att (vision-guided target);
* consistency: ``distance``(β‖α), KL by default, weighted ``spatial_consistency`` and
  ``frequency_consistency`` (1 each); ``stop_grad_target`` detaches β (off by default);
* remoulded contrast: for (v_i, a_i) the denominator holds the cross-modal a_j and, with
  ``within_modal_negatives``, the within-modal v_j (j ≠ i); symmetric; temperature τ; under DDP
  the j run over every process's batch (embeddings and, for per-pair pooling, visual maps gathered
  with gradients, as CID).

Baselines are configs of this code (``BASELINES``), plus the generic ``cid`` method:
``lvs`` (audio-guided attention only: the visual side of each pair pooled by β_v(a_j, V_i), no
α, no consistency, no within-modal negatives), ``no_within``, ``no_frequency``, ``no_consistency``
``stop_grad`` (targets detached) and ``stop_grad_no_within`` (and cross-modal negatives only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from avlab import dist
from avlab.losses.attention_consistency import DISTANCES, attention_consistency
from avlab.losses.remoulded_contrast import remoulded_contrast
from avlab.methods.base import TwoStreamMethod, register_method
from avlab.models.maps import set_padding
from avlab.models.recorder import AttentionMap

BASELINES = {
    "lvs": dict(visual_pool="audio_guided", within_modal_negatives=False, spatial_consistency=0.0,
                frequency_consistency=0.0),
    "no_within": dict(within_modal_negatives=False),
    "no_frequency": dict(frequency_consistency=0.0),
    "no_consistency": dict(spatial_consistency=0.0, frequency_consistency=0.0),
    "stop_grad": dict(stop_grad_target=True),
    "stop_grad_no_within": dict(stop_grad_target=True, within_modal_negatives=False),
}


POOLS = ("mean", "audio_guided", "max")


def roles(spec) -> tuple[str, str]:
    """(visual modality, audio modality) of a task: its ``image`` and ``spectrogram`` streams."""
    kinds = {s.kind: m for m, s in spec.modalities.items()}
    if "image" not in kinds or "spectrogram" not in kinds:
        raise ValueError(f"CMAC needs an image and a spectrogram modality; task {spec.task!r} has "
                         f"{ {m: s.kind for m, s in spec.modalities.items()} }")
    return kinds["image"], kinds["spectrogram"]


def cosine_map(query: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """cos(query_b, fmap_b[:, pos]) for (B, D) and (B, D, *pos) → (B, *pos)."""
    q = F.normalize(query, dim=1)
    return torch.einsum("bd,bd...->b...", q, F.normalize(fmap, dim=1))


@register_method("cmac")
class CMAC(TwoStreamMethod):
    tasks = ("sound-localisation",)

    @dataclass
    class Config:
        temperature: float = 0.07  # remoulded contrast τ (assumption; CID uses 0.03)
        attention_temperature: float = 0.1  # τ_att of the guided targets β
        within_modal_negatives: bool = True
        spatial_consistency: float = 1.0  # weight of distance(β_v‖α_v)
        frequency_consistency: float = 1.0  # weight of distance(β_a‖α_a)
        distance: str = "kl"  # kl | reverse_kl | js | l2
        stop_grad_target: bool = False  # detach β in the consistency terms
        visual_pool: str = "max"  # the pair score's visual side: max (best position) | audio_guided | mean
        visual_padding: str = "replicate"  # the visual encoder's convolution padding: zeros | replicate | reflect | circular
        image_encoder: str = "resnet_tiny_map"  # unless --encoder <image modality>=… says otherwise
        audio_encoder: str = "resnet_tiny_freq"

    def __init__(self, spec, model_cfg, cfg):
        if cfg.distance not in DISTANCES:
            raise ValueError(f"cmac: unknown distance {cfg.distance!r}; choose one of {DISTANCES}")
        if cfg.visual_pool not in POOLS:
            raise ValueError(f"cmac: visual_pool must be one of {POOLS}, got {cfg.visual_pool!r}")
        vis, aud = roles(spec)
        encoders = {vis: cfg.image_encoder, aud: cfg.audio_encoder, **model_cfg.encoders}
        super().__init__(spec, replace(model_cfg, encoders=encoders), cfg)
        self.vis, self.aud = vis, aud
        set_padding(self.encoders[vis], cfg.visual_padding)
        d = self.out_dim
        self.scorer_v = nn.Conv2d(d, 1, 1)  # α_v's 1×1 scorer
        self.scorer_a = nn.Conv1d(d, 1, 1)  # α_a's scorer over frequency rows
        self.attention = nn.ModuleDict({"alpha_v": AttentionMap(2), "beta_v": AttentionMap(2),
                                        "alpha_a": AttentionMap(1), "beta_a": AttentionMap(1)})

    @classmethod
    def check_fits(cls, spec) -> None:
        super().check_fits(spec)
        roles(spec)

    # --- maps and attention ------------------------------------------------------------------------
    def feature_map(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """(B, D, …) map in the loss space: the encoder's linear layer (and the shared projection)
        at every position, so its mean is the pooled embedding (before a non-linear projection)."""
        enc = self.encoders[modality]
        f = enc.feature_map(self._input(x)).movedim(1, -1)
        return self.projection(enc.fc(f)).movedim(-1, 1)

    def maps(self, batch: dict) -> dict[str, torch.Tensor]:
        V = self.feature_map(self.vis, batch[self.vis])  # (B, D, H, W)
        A = self.feature_map(self.aud, batch[self.aud]).mean(-1)  # (B, D, F): time pooled
        v, a = V.mean(dim=(2, 3)), A.mean(-1)
        tau = self.cfg.attention_temperature
        return {"V": V, "A": A, "v": v, "a": a,
                "alpha_v": self.attention["alpha_v"](self.scorer_v(V)[:, 0]),
                "beta_v": self.attention["beta_v"](cosine_map(a, V) / tau),
                "alpha_a": self.attention["alpha_a"](self.scorer_a(A)[:, 0]),
                "beta_a": self.attention["beta_a"](cosine_map(v, A) / tau)}

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        m = self.maps(batch)
        return {f"emb.{self.vis}": m["v"], f"emb.{self.aud}": m["a"],
                **{f"attn.{k}": m[k] for k in ("alpha_v", "beta_v", "alpha_a", "beta_a")}}

    def pair_logits(self, V: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(Bv, Ba) [i, j] = score(V_i, a_j)/τ where the visual side is pooled per pair: ``audio_guided``
        pools V_i by β_v(a_j, V_i) (the LVS-like score), ``max`` takes the best position's cosine
        (EZ-VSL's multiple-instance score: only where the sound matches best has to match)."""
        an = F.normalize(a, dim=1)
        cos = torch.einsum("jd,idn->ijn", an, F.normalize(V.flatten(2), dim=1))  # (Bv, Ba, H·W)
        if self.cfg.visual_pool == "max":
            return cos.amax(-1) / self.cfg.temperature
        beta = torch.softmax(cos / self.cfg.attention_temperature, dim=-1)
        pooled = torch.einsum("ijn,idn->ijd", beta, V.flatten(2))
        return (F.normalize(pooled, dim=-1) * an[None]).sum(-1) / self.cfg.temperature

    # --- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        c = self.cfg
        m = self.maps(batch)
        # Negatives from every process: the embeddings (and, for per-pair pooling, the maps) gathered
        # with their gradients, so N processes train as one on the global batch.
        v_all, a_all = dist.gather(m["v"]), dist.gather(m["a"])
        cross = None
        if c.visual_pool != "mean" and dist.world_size() == 1:  # each pair pools the visual map by its own sound
            cross = self.pair_logits(m["V"], m["a"])  # one (B, B) matrix, read both ways
        elif c.visual_pool != "mean":  # local anchors against every process's candidates, both ways
            cross = (self.pair_logits(m["V"], a_all), self.pair_logits(dist.gather(m["V"]), m["a"]).T)
        l_va, l_av = remoulded_contrast(m["v"], m["a"], c.temperature, c.within_modal_negatives, cross,
                                        v_all=v_all, a_all=a_all, offset=dist.offset(len(m["v"])))
        contrast = l_va.mean() + l_av.mean()
        # What the contrast is at chance (every logit equal): ln(#logits) per direction — so a curve
        # sitting on it is visibly not learning (the audit of runs that did not localise).
        n = len(a_all)
        chance = 2 * math.log(2 * n - 1 if c.within_modal_negatives else n)
        cons_v = attention_consistency(m["alpha_v"], m["beta_v"], c.distance, c.stop_grad_target)
        cons_a = attention_consistency(m["alpha_a"], m["beta_a"], c.distance, c.stop_grad_target)
        loss = contrast + c.spatial_consistency * cons_v + c.frequency_consistency * cons_a
        return loss, {"loss": loss.detach(), "contrast": contrast.detach(), "contrast_chance": torch.tensor(chance, device=loss.device),
                      "consistency_v": cons_v.detach(), "consistency_a": cons_a.detach()}
