"""Low-shot supervision: identity labels on a fraction of the training clips.

Used after self-supervised pre-training (``init_from`` a CMPC or CID run) or from scratch, to
compare what pre-training buys (DESIGN §2.1). One identity classifier is shared by both
modalities — a voice and a face of the same person must land on the same class weight — and the
cross-modal instance loss is kept so that the pairing stays aligned.
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

    def __init__(self, model_cfg, cfg, n_train: int, n_classes: int = 1):
        super().__init__(model_cfg, cfg, n_train, n_classes)
        self.classifier = nn.Parameter(torch.randn(max(n_classes, 1), model_cfg.proj_dim or model_cfg.embed_dim) * 0.01)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.cfg.classifier_scale * F.normalize(z, dim=1) @ F.normalize(self.classifier, dim=1).T

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        voice, face, l_v2f, l_f2v = self.instance_losses(batch)
        ce_voice = F.cross_entropy(self.logits(voice), batch["label"])
        ce_face = F.cross_entropy(self.logits(face), batch["label"])
        inst = l_v2f.mean() + l_f2v.mean()
        loss = ce_voice + ce_face + self.cfg.instance_weight * inst
        return loss, {"loss": loss.item(), "ce_voice": ce_voice.item(), "ce_face": ce_face.item(), "instance": inst.item()}
