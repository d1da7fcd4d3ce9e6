"""CMPC: cross-modal prototype contrast (Zhu et al., IJCAI-22), on top of CID.

Per step: CID's instance losses; the memory banks (one entry per training sample and modality,
m ← normalize(0.5·m + 0.5·z)); once clusterings exist, the prototype loss of each modality against
the other's prototypes (averaged over granularities) and recalibration weights on both. The banks
are re-clustered by k-means at several granularities every ``cluster_every`` epochs after
``cluster_warmup_epochs``; a clustering is kept until the next one.

The released code differs from the paper in several ways; each is a switch, default = the paper
(README, "CMPC: paper vs released code"): ``quirk_discard_clusters`` (it drops the clustering
after one batch), ``granularity_weighting = "official"`` (1/64, 1/16, 1/4),
``prototype_agreement = "official"`` (raw centroids, summed), ``phi_placement = "official"`` (the
concentrations misaligned by column), ``kmeans_init = "first_k"`` (Lloyd from the first K bank
rows, no empty-cluster repair).

Written for any pair of modalities (the task's order: anchor modality first); registered for the
voice-face task, where the paper evaluates it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from avlab import dist
from avlab.checkpoint import atomic_save
from avlab.cluster import KMEANS_INITS, Clustering, cluster_bank
from avlab.losses.prototype import GRANULARITY_WEIGHTINGS, PHI_PLACEMENTS, multi_granularity_loss, prototype_loss
from avlab.losses.recalibration import prototype_agreement, recalibration_weights, weighted_mean
from avlab.methods.base import register_method
from avlab.methods.cid import CID


@register_method("cmpc")
class CMPC(CID):
    tasks = ("voice-face",)

    @dataclass
    class Config:
        temperature: float = 0.03
        num_prototypes: tuple = ()  # explicit K per granularity; empty → per_identity, else fractions
        per_identity: tuple[float, ...] = ()  # K = these × the training identities (the released code: 0.5, 1, 1.5)
        prototype_fractions: tuple = (0.08, 0.16, 0.24)  # K = these × the training clips
        cluster_warmup_epochs: int = 5
        cluster_every: int = 2
        kmeans_iters: int = 20
        memory_momentum: float = 0.5
        concentration_temperature: float = 0.2
        recalibration: bool = True
        delta: float = -1.0
        kappa: float = 0.1
        quirk_discard_clusters: bool = False
        granularity_weighting: str = "mean"  # mean | official
        prototype_agreement: str = "mean"  # mean | official
        phi_placement: str = "prototype"  # prototype (PCL) | anchor | official
        kmeans_init: str = "faiss"  # faiss | first_k (the released KeOps k-means)

    def __init__(self, spec, model_cfg, cfg):
        super().__init__(spec, model_cfg, cfg)
        for option, allowed in (("granularity_weighting", GRANULARITY_WEIGHTINGS), ("phi_placement", PHI_PLACEMENTS),
                                ("kmeans_init", KMEANS_INITS), ("prototype_agreement", ("mean", "official"))):
            if getattr(cfg, option) not in allowed:
                raise ValueError(f"cmpc: {option} must be one of {list(allowed)}, got {getattr(cfg, option)!r}")
        g = torch.Generator().manual_seed(0)
        for m in self.modalities:
            self.register_buffer(f"{m}_bank", F.normalize(torch.randn(spec.n_train, self.out_dim, generator=g), dim=1))
        self.clusters: dict[str, Clustering] = {}

    def bank(self, modality: str) -> torch.Tensor:
        return getattr(self, f"{modality}_bank")

    def prototype_counts(self) -> list[int]:
        n = self.spec.n_train
        if self.cfg.per_identity and not self.spec.n_classes:
            raise ValueError("cmpc: per_identity needs the number of training identities (the data spec has none)")
        ks = (self.cfg.num_prototypes or [round(m * self.spec.n_classes) for m in self.cfg.per_identity]
              or [round(f * n) for f in self.cfg.prototype_fractions])
        return [int(min(max(2, k), n)) for k in ks]

    @torch.no_grad()
    def update_banks(self, index: torch.Tensor, z: dict[str, torch.Tensor]) -> None:
        m = self.cfg.memory_momentum
        for mod in self.modalities:
            bank = self.bank(mod)
            bank[index] = F.normalize(m * bank[index] + (1 - m) * F.normalize(z[mod], dim=1), dim=1)

    def on_epoch_start(self, epoch: int, run_dir=None) -> dict:
        c = self.cfg
        if epoch < c.cluster_warmup_epochs or (epoch - c.cluster_warmup_epochs) % c.cluster_every:
            return {}
        ks = self.prototype_counts()
        clusters = None
        if dist.is_main():  # the banks are identical on every process: cluster once, broadcast
            clusters = {m: cluster_bank(self.bank(m).cpu(), ks, c.kmeans_iters, seed=10_000 * i + epoch,
                                        temperature=c.concentration_temperature, init=c.kmeans_init)
                        for i, m in enumerate(self.modalities)}
        clusters = dist.broadcast_object(clusters)
        self.clusters = {m: _on(cl, self.bank(m).device) for m, cl in clusters.items()}
        if run_dir is not None and dist.is_main():  # the latest clustering, for the cluster-inspection
            # notebook, and the first one (what the prototype loss starts from: how good it was then)
            names = ["clusters.safetensors"] + (["clusters_first.safetensors"] if epoch == c.cluster_warmup_epochs else [])
            for name in names:
                atomic_save({k: v for m in self.modalities for k, v in clusters[m].tensors(m).items()},
                            Path(run_dir) / name, {"epoch": str(epoch), "num_prototypes": json.dumps(ks)})
        return {"clustered": 1, "num_prototypes": ks}

    def _prototype_terms(self, z: dict, z_all: dict, index_all: torch.Tensor, offset: int):
        """Per-sample prototype losses of the local anchors (against the global batch's
        prototypes) and the recalibration weights: local ones and their global sum."""
        a, b = self.modalities
        ca, cb = self.clusters[a], self.clusters[b]

        def against(anchor, other: Clustering):  # anchors against the other modality's prototypes
            return multi_granularity_loss([prototype_loss(anchor, other.centroids[g], other.assign[g][index_all],
                                                          other.phi[g], self.cfg.phi_placement, offset)
                                           for g in range(len(other.centroids))], self.cfg.granularity_weighting)

        p_ab, p_ba = against(z[a], cb), against(z[b], ca)
        local = slice(offset, offset + len(p_ab))
        if self.cfg.recalibration:  # ρ's mean and spread are the global batch's
            agreement = prototype_agreement(
                [ca.centroids[g][ca.assign[g][index_all]] for g in range(len(ca.centroids))],
                [cb.centroids[g][cb.assign[g][index_all]] for g in range(len(cb.centroids))],
                self.cfg.prototype_agreement)
            w_all = recalibration_weights(z_all[a], z_all[b], agreement, self.cfg.delta, self.cfg.kappa)
        else:
            w_all = torch.ones(len(index_all), dtype=p_ab.dtype, device=p_ab.device)
        return p_ab, p_ba, w_all[local], w_all.sum()

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        z, z_all, l_ab, l_ba = self.instance_losses(batch)
        index_all = dist.gather(batch["index"])
        logs = self.instance_logs(l_ab, l_ba)
        if self.clusters:
            p_ab, p_ba, w, w_total = self._prototype_terms(z, z_all, index_all, dist.offset(len(l_ab)))
            world = dist.world_size()
            loss = weighted_mean(l_ab + p_ab, w, w_total, world) + weighted_mean(l_ba + p_ba, w, w_total, world)
            logs.update({f"proto_{self.a2b}": p_ab.detach().mean(), f"proto_{self.b2a}": p_ba.detach().mean(),
                         "weight_mean": w.mean()})
            if self.cfg.quirk_discard_clusters:
                self.clusters = {}
        else:
            loss = l_ab.mean() + l_ba.mean()
        self.update_banks(index_all, {m: v.detach() for m, v in z_all.items()})  # identical on every process
        logs["loss"] = loss.detach()
        return loss, logs

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for m, c in self.clusters.items() for k, v in c.tensors(f"{m}_clusters").items()}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        loaded = {m: Clustering.from_tensors(tensors, f"{m}_clusters") for m in self.modalities}
        self.clusters = {m: _on(c, self.bank(m).device) for m, c in loaded.items() if c is not None}


def _on(c: Clustering, device: torch.device) -> Clustering:
    """The clustering's tensors on ``device`` (k-means runs on CPU; the loss runs beside the bank)."""
    return Clustering([x.to(device) for x in c.centroids], [x.to(device) for x in c.assign],
                      [x.to(device) for x in c.phi])
