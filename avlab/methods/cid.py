"""CID: cross-modal instance discrimination — the baseline of all three method families.

Symmetric InfoNCE between the voice and the face of the same clip, with the other clips of the
batch as negatives (temperature 0.03 as in CMPC's code).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from avlab.losses.infonce import cross_modal_info_nce
from avlab.methods.base import CrossModalMethod, register_method


@register_method("cid")
class CID(CrossModalMethod):
    @dataclass
    class Config:
        temperature: float = 0.03

    def instance_losses(self, batch: dict):
        voice, face = self.encode(batch)
        l_v2f, l_f2v = cross_modal_info_nce(voice, face, self.cfg.temperature)
        return voice, face, l_v2f, l_f2v

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        _, _, l_v2f, l_f2v = self.instance_losses(batch)
        loss = l_v2f.mean() + l_f2v.mean()
        return loss, {"loss": loss.item(), "inst_v2f": l_v2f.mean().item(), "inst_f2v": l_f2v.mean().item()}
