"""ADC-SSL: adversarial dual-contrast self-supervised lip reading (Sheng et al., ACM MM 2021).

No code is public and the paper body is not available; DESIGN §2.2 lists what is known. Every
concrete choice below is **our assumption**, each an option of :class:`ADCSSL.Config` (so it is
written in the run's ``config.json``), the DESIGN default first:

* Encoders: per modality a frame-level front-end (video: 3D conv 5×7×7 + per-frame 2D ResNet;
  audio: conv over MFCC strided to the video rate) and a multi-scale temporal conv net with
  average pooling (:mod:`avlab.models.lip`; the task's defaults ``lip_video_tiny`` /
  ``lip_audio_tiny``). Both front-ends give ``frame_dim``-d features, one per video frame.
* Short-term contrast (``short``, ``short_weight``): frame features averaged over windows of
  ``short_window`` frames (5 = 0.2 s) every ``short_stride`` frames, a linear head per modality
  (``short_dim``), InfoNCE of each visual window against the audio window at the same time, with
  the other times of the same clip and all windows of the other clips as negatives
  (``short_negatives``: all | same_clip | other_clips), symmetric, temperature
  ``short_temperature``. Negatives come from the local batch (not gathered across processes).
* Long-term contrast (``long``, ``long_weight``): clip embeddings (TCN → mean over time → linear,
  then the shared projection head if any), symmetric cross-modal InfoNCE across clips (gathered
  across processes, as CID), temperature ``long_temperature``.
* Identity discriminator (``identity_adversary``, ``identity_weight``): an MLP on a pair of
  visual window features (symmetric: |x − y| and x ⊙ y) predicts "same speaker"; pairs are two
  windows of one clip (same, by self-supervision) and the same window of the next clip in the
  batch (presumed different). Modality classifier (``modality_adversary``,
  ``modality_weight``): an MLP predicts audio vs video from a window feature. Both learn
  normally (binary cross-entropy); the front-ends receive their gradient reversed through a GRL.
* GRL strength (``grl``): ``momentum`` (default) — λ ← m·λ + (1 − m)·(2/(1+e^(−10p)) − 1) every
  step, m = ``grl_momentum``; ``plain`` — λ = the ramp itself (DANN). p = epochs done /
  ``ramp_epochs``; the reversed gradient is scaled by ``grl_scale``·λ.
* Discriminator update ratio (``disc_steps``): the adversaries take ``disc_steps − 1`` extra
  plain-SGD steps (``disc_lr``) on detached features before each joint step (stateless, so a
  resumed run repeats them exactly).

Ablations are configs of this code: short-only (``--long false``), long-only (``--short
false``), no adversaries (``--identity-adversary false --modality-adversary false``), plain GRL
(``--grl plain``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from avlab import dist
from avlab.losses.grl import grad_reverse, momentum_lambda, ramp
from avlab.losses.infonce import cross_modal_info_nce
from avlab.losses.nce import NEGATIVES, short_term_nce, windows
from avlab.methods.base import TwoStreamMethod, register_method


def _mlp(d_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))


@register_method("adc-ssl")
class ADCSSL(TwoStreamMethod):
    tasks = ("lip-reading",)

    @dataclass
    class Config:
        short: bool = True
        long: bool = True
        identity_adversary: bool = True
        modality_adversary: bool = True
        short_weight: float = 1.0
        long_weight: float = 1.0
        identity_weight: float = 0.5
        modality_weight: float = 0.5
        short_window: int = 5  # frames (0.2 s at 25 fps)
        short_stride: int = 5  # non-overlapping windows: overlapping ones would be near-duplicate negatives
        short_dim: int = 64
        short_negatives: str = "all"  # all | same_clip | other_clips
        short_temperature: float = 0.1
        long_temperature: float = 0.07
        grl: str = "momentum"  # momentum | plain
        grl_momentum: float = 0.99
        grl_scale: float = 1.0
        ramp_epochs: float = 10.0
        disc_steps: int = 1  # adversary updates per encoder update
        disc_lr: float = 0.05
        disc_hidden: int = 128

    def __init__(self, spec, model_cfg, cfg):
        super().__init__(spec, model_cfg, cfg)
        if cfg.grl not in ("momentum", "plain"):
            raise ValueError(f"adc-ssl: grl must be 'momentum' or 'plain', got {cfg.grl!r}")
        if cfg.short_negatives not in NEGATIVES:
            raise ValueError(f"adc-ssl: short_negatives must be one of {NEGATIVES}, got {cfg.short_negatives!r}")
        if cfg.disc_steps < 1:
            raise ValueError(f"adc-ssl: disc_steps must be >= 1, got {cfg.disc_steps}")
        dims = {}
        for m, enc in self.encoders.items():
            if not hasattr(enc, "frames"):
                raise ValueError(f"adc-ssl needs frame-level encoders (e.g. lip_video_tiny, lip_audio_tiny); the "
                                 f"{m!r} encoder {model_cfg.encoder_for(m, spec.modalities[m].encoder)!r} has none")
            dims[m] = enc.frame_dim
        if len(set(dims.values())) != 1:
            raise ValueError(f"adc-ssl compares frame features across modalities; their sizes differ: {dims}")
        d = next(iter(dims.values()))
        self.visual, self.audio = self.modalities  # the task lists video first
        self.short_heads = nn.ModuleDict({m: nn.Linear(d, cfg.short_dim) for m in self.modalities})
        self.identity_head = _mlp(2 * d, cfg.disc_hidden)
        self.modality_head = _mlp(d, cfg.disc_hidden)
        self.register_buffer("grl_step", torch.zeros(()))
        self.register_buffer("grl_lambda", torch.zeros(()))

    # --- pieces ----------------------------------------------------------------------------------
    def frame_features(self, batch: dict) -> dict[str, torch.Tensor]:
        f = {m: self.encoders[m].frames(self._input(batch[m])) for m in self.modalities}
        tv, ta = f[self.visual].shape[1], f[self.audio].shape[1]
        if tv != ta:
            raise ValueError(f"adc-ssl: {tv} video frames but {ta} audio frames after the front-ends; the audio "
                             "must have 4 MFCC frames per video frame (25 ms window, 10 ms hop)")
        return f

    def identity_logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.identity_head(torch.cat([(x - y).abs(), x * y], dim=-1)).squeeze(-1)

    def adversary_losses(self, win_v: torch.Tensor, win_a: torch.Tensor) -> dict[str, torch.Tensor]:
        """Binary cross-entropies and accuracies of both adversaries on window features (B, W, d)."""
        out = {}
        if self.cfg.identity_adversary:
            other_time = win_v.roll(1, dims=1)  # another window of the same clip
            other_clip = win_v.roll(1, dims=0)  # the same window of another clip
            logits = torch.cat([self.identity_logits(win_v, other_time), self.identity_logits(win_v, other_clip)])
            target = torch.cat([torch.ones_like(logits[: len(win_v)]), torch.zeros_like(logits[len(win_v):])])
            out["identity"] = F.binary_cross_entropy_with_logits(logits, target)
            out["id_acc"] = ((logits > 0).float() == target).float().mean().detach()
        if self.cfg.modality_adversary:
            logits = self.modality_head(torch.cat([win_v, win_a])).squeeze(-1)
            target = torch.cat([torch.zeros_like(logits[: len(win_v)]), torch.ones_like(logits[len(win_v):])])
            out["modality"] = F.binary_cross_entropy_with_logits(logits, target)
            out["mod_acc"] = ((logits > 0).float() == target).float().mean().detach()
        return out

    def adversary_parameters(self) -> list[nn.Parameter]:
        return [*self.identity_head.parameters(), *self.modality_head.parameters()]

    @torch.no_grad()
    def advance_lambda(self, batch_size: int) -> torch.Tensor:
        """One step of the reversal schedule; p = epochs done / ``ramp_epochs``."""
        steps_per_epoch = max(1, self.spec.n_train // max(batch_size, 1))
        p = (self.grl_step / (steps_per_epoch * self.cfg.ramp_epochs)).clamp(max=1.0)
        lam = (momentum_lambda(self.grl_lambda, p, self.cfg.grl_momentum) if self.cfg.grl == "momentum"
               else ramp(p).to(self.grl_lambda))
        self.grl_lambda.copy_(lam)
        self.grl_step += 1
        return self.grl_lambda.clone()

    def extra_discriminator_steps(self, win_v: torch.Tensor, win_a: torch.Tensor) -> None:
        """``disc_steps − 1`` SGD steps of the adversaries alone, on detached features."""
        params = self.adversary_parameters()
        for _ in range(self.cfg.disc_steps - 1):
            losses = self.adversary_losses(win_v.detach(), win_a.detach())
            total = sum(losses.get(k, 0.0) for k in ("identity", "modality"))
            if not torch.is_tensor(total):
                return
            grads = torch.autograd.grad(total, params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    if g is not None:
                        p -= self.cfg.disc_lr * g

    # --- the Method API --------------------------------------------------------------------------
    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        f = self.frame_features(batch)
        win = {m: windows(f[m], cfg.short_window, cfg.short_stride) for m in self.modalities}
        loss = torch.zeros((), device=f[self.visual].device)
        logs = {}
        if cfg.short:
            zv, za = (self.short_heads[m](win[m]) for m in (self.visual, self.audio))
            short = 0.5 * (short_term_nce(zv, za, cfg.short_temperature, cfg.short_negatives).mean()
                           + short_term_nce(za, zv, cfg.short_temperature, cfg.short_negatives).mean())
            loss = loss + cfg.short_weight * short
            logs["short"] = short.detach()
        if cfg.long:
            z = {m: self.projection(self.encoders[m].temporal(f[m])) for m in self.modalities}
            z_all = {m: dist.gather(v) for m, v in z.items()}
            l_va, l_av = cross_modal_info_nce(z[self.visual], z[self.audio], cfg.long_temperature,
                                              z_all[self.visual], z_all[self.audio], dist.offset(len(z[self.visual])))
            long = 0.5 * (l_va.mean() + l_av.mean())
            loss = loss + cfg.long_weight * long
            logs["long"] = long.detach()
        if cfg.identity_adversary or cfg.modality_adversary:
            lam = self.advance_lambda(len(f[self.visual])) if self.training else self.grl_lambda
            self.extra_discriminator_steps(win[self.visual], win[self.audio])
            rev = {m: grad_reverse(win[m], cfg.grl_scale * lam) for m in self.modalities}
            adv = self.adversary_losses(rev[self.visual], rev[self.audio])
            if "identity" in adv:
                loss = loss + cfg.identity_weight * adv["identity"]
            if "modality" in adv:
                loss = loss + cfg.modality_weight * adv["modality"]
            logs.update({k: v.detach() for k, v in adv.items()}, **{"lambda": lam.detach()})
        return loss, {"loss": loss.detach(), **logs}

    @torch.no_grad()
    def modality_accuracy(self, video_frames: torch.Tensor, audio_frames: torch.Tensor) -> float:
        """The modality classifier's accuracy on (N, T, d) frame features of each modality (windows)."""
        wv = windows(video_frames, self.cfg.short_window, self.cfg.short_stride)
        wa = windows(audio_frames, self.cfg.short_window, self.cfg.short_stride)
        pv, pa = self.modality_head(wv).squeeze(-1) > 0, self.modality_head(wa).squeeze(-1) > 0
        return float(torch.cat([~pv, pa]).float().mean())
