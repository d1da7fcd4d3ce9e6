"""CID: cross-modal instance discrimination — the baseline of all three method families.

Symmetric InfoNCE between the two modalities of the same sample (voice and face of a clip; lips
and audio; image and sound), with the other samples of the batch as negatives (temperature 0.03
as in CMPC's code). Fits any task with two embedding modalities.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from avlab.losses.infonce import cross_modal_info_nce
from avlab.methods.base import TwoStreamMethod, register_method


@register_method("cid")
class CID(TwoStreamMethod):
    @dataclass
    class Config:
        temperature: float = 0.03

    def instance_losses(self, batch: dict):
        """(embeddings by modality, per-sample a→b loss, per-sample b→a loss)."""
        z = self.encode(batch)
        l_ab, l_ba = cross_modal_info_nce(*(z[m] for m in self.modalities), self.cfg.temperature)
        return z, l_ab, l_ba

    def instance_logs(self, l_ab: torch.Tensor, l_ba: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"inst_{self.a2b}": l_ab.detach().mean(), f"inst_{self.b2a}": l_ba.detach().mean()}

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        _, l_ab, l_ba = self.instance_losses(batch)
        loss = l_ab.mean() + l_ba.mean()
        return loss, {"loss": loss.detach(), **self.instance_logs(l_ab, l_ba)}
