"""What every voice-face method shares: two encoders, embedding, the method registry."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from avlab.models import create_model

METHODS: dict[str, type["CrossModalMethod"]] = {}


def register_method(name: str):
    def wrap(cls):
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def create_method(name: str, model_cfg, method_cfg=None, n_train: int = 0, n_classes: int = 0) -> "CrossModalMethod":
    """``n_train``: training clips (memory banks); ``n_classes``: identities (supervised heads)."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; registered: {sorted(METHODS)}")
    cls = METHODS[name]
    return cls(model_cfg, method_cfg or cls.Config(), n_train, n_classes)


@dataclass
class ModelConfig:
    """Encoder choices shared by all voice-face methods (CMPC's official: resnet34, 224², 512-d)."""

    face_model: str = "resnet_tiny"
    voice_model: str = "resnet_tiny"
    embed_dim: int = 128
    # A projection head shared by both modalities (None: none, as in CMPC's released model). It
    # must be shared: evaluation uses the features before it, which are comparable across
    # modalities only if one head maps both into the loss space.
    proj_dim: int | None = None


class CrossModalMethod(nn.Module, ABC):
    """A face encoder and a voice encoder; subclasses define ``loss``.

    ``Config`` is the method's own options (a dataclass); the training loop calls ``on_epoch_start``
    and ``training_step``; ``extra_tensors`` / ``load_extra_tensors`` carry state that is not a
    parameter or buffer (e.g. clusterings) through checkpoints.
    """

    name = "base"

    @dataclass
    class Config:
        pass

    def __init__(self, model_cfg: ModelConfig, cfg, n_train: int, n_classes: int = 0):
        super().__init__()
        self.cfg, self.n_train, self.n_classes = cfg, n_train, n_classes
        self.face_encoder = create_model(model_cfg.face_model, in_channels=3, embed_dim=model_cfg.embed_dim, proj_dim=None)
        self.voice_encoder = create_model(model_cfg.voice_model, in_channels=1, embed_dim=model_cfg.embed_dim, proj_dim=None)
        self.projection = (nn.Sequential(nn.ReLU(), nn.Linear(model_cfg.embed_dim, model_cfg.proj_dim))
                           if model_cfg.proj_dim else nn.Identity())

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(voice, face) embeddings in the loss space (after the shared projection, if any)."""
        return (self.projection(self.voice_encoder(batch["voice"].unsqueeze(1))),
                self.projection(self.face_encoder(batch["face"])))

    @torch.no_grad()
    def embed_voice(self, mel: torch.Tensor) -> torch.Tensor:
        """L2-normalised trunk features (before the projection head, as CMPC evaluates)."""
        return F.normalize(self.voice_encoder.features(mel.unsqueeze(1)), dim=1)

    @torch.no_grad()
    def embed_face(self, face: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.face_encoder.features(face), dim=1)

    def on_epoch_start(self, epoch: int, run_dir=None) -> dict:
        return {}

    @abstractmethod
    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """(loss, logs for metrics.jsonl) of one batch; ``logs["loss"]`` is the loss value."""

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass
