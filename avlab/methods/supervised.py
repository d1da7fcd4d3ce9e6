"""Supervised: a label classifier on both modalities plus the cross-modal instance loss.

Used for low-shot supervision after self-supervised pre-training (``init_from`` a CMPC or CID
run) or from scratch, to compare what pre-training buys (DESIGN §2.1). One classifier is shared by
both modalities — a voice and a face of the same person must land on the same class weight — and
the cross-modal instance loss keeps the pairing aligned.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from avlab.methods.base import register_method
from avlab.methods.cid import CID


@register_method("supervised")
class Supervised(CID):
    @dataclass
    class Config:
        temperature: float = 0.03
        classifier_scale: float = 16.0  # cosine-classifier logit scale
        instance_weight: float = 1.0

    def __init__(self, spec, model_cfg, cfg):
        super().__init__(spec, model_cfg, cfg)
        self.classifier = nn.Parameter(torch.randn(max(spec.n_classes, 1), self.out_dim) * 0.01)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.cfg.classifier_scale * F.normalize(z, dim=1) @ F.normalize(self.classifier, dim=1).T

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        z = self.encode(batch)
        return {**{f"emb.{m}": v for m, v in z.items()}, **{f"logits.{m}": self.logits(v) for m, v in z.items()}}

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        z, _, l_ab, l_ba = self.instance_losses(batch)
        ce = {m: F.cross_entropy(self.logits(z[m]), batch["label"]) for m in self.modalities}
        inst = l_ab.mean() + l_ba.mean()
        loss = sum(ce.values()) + self.cfg.instance_weight * inst
        return loss, {"loss": loss.detach(), **{f"ce_{m}": v.detach() for m, v in ce.items()},
                      "instance": inst.detach()}
