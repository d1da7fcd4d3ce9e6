"""CID: cross-modal instance discrimination — the baseline of all three method families.

Symmetric InfoNCE between the two modalities of the same sample (voice and face of a clip; lips
and audio; image and sound), with the other samples of the batch as negatives (temperature 0.03
as in CMPC's code). Fits any task with two embedding modalities.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from avlab import dist
from avlab.losses.infonce import cross_modal_info_nce
from avlab.methods.base import TwoStreamMethod, register_method


@register_method("cid")
class CID(TwoStreamMethod):
    @dataclass
    class Config:
        temperature: float = 0.03

    def instance_losses(self, batch: dict):
        """(local embeddings by modality, the global batch's (gathered across processes; the local
        ones in one process), per-sample a→b loss, per-sample b→a loss) — the losses of the local
        anchors against the global batch."""
        z = self.encode(batch)
        z_all = {m: dist.gather(v) for m, v in z.items()}
        a, b = self.modalities
        l_ab, l_ba = cross_modal_info_nce(z[a], z[b], self.cfg.temperature, z_all[a], z_all[b],
                                          dist.offset(len(z[a])))
        return z, z_all, l_ab, l_ba

    def instance_logs(self, l_ab: torch.Tensor, l_ba: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"inst_{self.a2b}": l_ab.detach().mean(), f"inst_{self.b2a}": l_ba.detach().mean()}

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        _, _, l_ab, l_ba = self.instance_losses(batch)
        loss = l_ab.mean() + l_ba.mean()
        return loss, {"loss": loss.detach(), **self.instance_logs(l_ab, l_ba)}
