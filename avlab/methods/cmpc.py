"""CMPC: cross-modal prototype contrast (Zhu et al., IJCAI-22), on top of CID.

Per step: CID's instance losses; the memory banks (one entry per training clip and modality,
m ← normalize(0.5·m + 0.5·z)); once clusterings exist, the prototype loss of each modality against
the other's prototypes (averaged over granularities) and recalibration weights on both. The banks
are re-clustered by k-means at several granularities every ``cluster_every`` epochs after
``cluster_warmup_epochs``; a clustering is kept until the next one.

The released code differs from the paper in three ways; each is a switch, default = the paper:
``quirk_discard_clusters`` (it drops the clustering after one batch), ``granularity_weighting =
"official"`` (1/27, 1/9, 1/3), ``prototype_agreement = "official"`` (raw centroids, summed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from avlab.checkpoint import atomic_save
from avlab.cluster import Clustering, cluster_bank
from avlab.losses.prototype import multi_granularity_loss, prototype_loss
from avlab.losses.recalibration import prototype_agreement, recalibration_weights, weighted_mean
from avlab.methods.base import register_method
from avlab.methods.cid import CID


@register_method("cmpc")
class CMPC(CID):
    @dataclass
    class Config:
        temperature: float = 0.03
        num_prototypes: tuple = ()  # explicit K per granularity; empty → prototype_fractions × clips
        prototype_fractions: tuple = (0.08, 0.16, 0.24)
        cluster_warmup_epochs: int = 5
        cluster_every: int = 2
        kmeans_iters: int = 20
        memory_momentum: float = 0.5
        concentration_temperature: float = 0.2
        recalibration: bool = True
        delta: float = -1.0
        kappa: float = 0.1
        quirk_discard_clusters: bool = False
        granularity_weighting: str = "mean"
        prototype_agreement: str = "mean"

    def __init__(self, model_cfg, cfg, n_train: int, n_classes: int = 0):
        super().__init__(model_cfg, cfg, n_train, n_classes)
        dim = model_cfg.proj_dim or model_cfg.embed_dim
        g = torch.Generator().manual_seed(0)
        self.register_buffer("voice_bank", F.normalize(torch.randn(n_train, dim, generator=g), dim=1))
        self.register_buffer("face_bank", F.normalize(torch.randn(n_train, dim, generator=g), dim=1))
        self.voice_clusters: Clustering | None = None
        self.face_clusters: Clustering | None = None

    def prototype_counts(self) -> list[int]:
        ks = self.cfg.num_prototypes or [round(f * self.n_train) for f in self.cfg.prototype_fractions]
        return [int(min(max(2, k), self.n_train)) for k in ks]

    @torch.no_grad()
    def update_banks(self, index: torch.Tensor, voice: torch.Tensor, face: torch.Tensor) -> None:
        m = self.cfg.memory_momentum
        self.voice_bank[index] = F.normalize(m * self.voice_bank[index] + (1 - m) * F.normalize(voice, dim=1), dim=1)
        self.face_bank[index] = F.normalize(m * self.face_bank[index] + (1 - m) * F.normalize(face, dim=1), dim=1)

    def on_epoch_start(self, epoch: int, run_dir=None) -> dict:
        c = self.cfg
        if epoch < c.cluster_warmup_epochs or (epoch - c.cluster_warmup_epochs) % c.cluster_every:
            return {}
        ks = self.prototype_counts()
        self.voice_clusters = cluster_bank(self.voice_bank, ks, c.kmeans_iters, seed=epoch,
                                           temperature=c.concentration_temperature)
        self.face_clusters = cluster_bank(self.face_bank, ks, c.kmeans_iters, seed=10_000 + epoch,
                                          temperature=c.concentration_temperature)
        if run_dir is not None:  # the latest clustering, for the cluster-inspection notebook
            atomic_save({**self.voice_clusters.tensors("voice"), **self.face_clusters.tensors("face")},
                        Path(run_dir) / "clusters.safetensors",
                        {"epoch": str(epoch), "num_prototypes": json.dumps(ks)})
        return {"clustered": 1, "num_prototypes": ks}

    def _prototype_terms(self, voice, face, index):
        vc, fc = self.voice_clusters, self.face_clusters
        weighting = self.cfg.granularity_weighting
        # Voice anchors against face prototypes, face anchors against voice prototypes.
        v2f = multi_granularity_loss([prototype_loss(voice, fc.centroids[g], fc.assign[g][index], fc.phi[g])
                                      for g in range(len(fc.centroids))], weighting)
        f2v = multi_granularity_loss([prototype_loss(face, vc.centroids[g], vc.assign[g][index], vc.phi[g])
                                      for g in range(len(vc.centroids))], weighting)
        if self.cfg.recalibration:
            agreement = prototype_agreement([vc.centroids[g][vc.assign[g][index]] for g in range(len(vc.centroids))],
                                            [fc.centroids[g][fc.assign[g][index]] for g in range(len(fc.centroids))],
                                            self.cfg.prototype_agreement)
            w = recalibration_weights(voice, face, agreement, self.cfg.delta, self.cfg.kappa)
        else:
            w = torch.ones(len(voice))
        return v2f, f2v, w

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        voice, face, l_v2f, l_f2v = self.instance_losses(batch)
        index = batch["index"]
        logs = {"inst_v2f": l_v2f.mean().item(), "inst_f2v": l_f2v.mean().item()}
        if self.face_clusters is not None:
            p_v2f, p_f2v, w = self._prototype_terms(voice, face, index)
            loss = weighted_mean(l_v2f + p_v2f, w) + weighted_mean(l_f2v + p_f2v, w)
            logs.update(proto_v2f=p_v2f.mean().item(), proto_f2v=p_f2v.mean().item(), weight_mean=w.mean().item())
            if self.cfg.quirk_discard_clusters:
                self.voice_clusters = self.face_clusters = None
        else:
            loss = l_v2f.mean() + l_f2v.mean()
        self.update_banks(index, voice.detach(), face.detach())
        logs["loss"] = loss.item()
        return loss, logs

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        if self.voice_clusters is not None:
            out.update(self.voice_clusters.tensors("voice_clusters"))
            out.update(self.face_clusters.tensors("face_clusters"))
        return out

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.voice_clusters = Clustering.from_tensors(tensors, "voice_clusters")
        self.face_clusters = Clustering.from_tensors(tensors, "face_clusters")
