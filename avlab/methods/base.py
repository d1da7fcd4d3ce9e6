"""The Method API every method implements, whatever its task and modalities.

A method is an ``nn.Module`` built from three things: a :class:`DataSpec` (the task, its
modalities and their inputs, the number of training samples and classes — what the data says),
a :class:`ModelConfig` (encoder choices) and its own ``Config`` (a dataclass of options, which
become command-line flags). The training loop, checkpointing, evaluation, notebooks and the demo
talk to this API only:

* ``training_step(batch) -> (loss, logs)``: ``logs`` maps names to detached scalar tensors (the
  loop syncs them to Python every few steps, not every step);
* ``forward(batch) -> dict``: named outputs (``emb.<modality>``, logits, attention maps …);
* ``embed(modality, x)``: L2-normalised evaluation features of one modality's inputs;
* ``on_epoch_start`` / ``extra_tensors`` / ``load_extra_tensors``: per-epoch work (clustering)
  and state that is not a parameter or buffer, carried through checkpoints.

Every tensor a method creates follows its inputs' device (tested on the ``meta`` device).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from avlab.models import create_model
from avlab.registry import METHODS


def register_method(name: str):
    """``@register_method("cid")``: the class becomes available to the loop, CLI and tests."""
    return METHODS.register(name)


@dataclass
class ModalitySpec:
    """One input stream: ``kind`` (image | spectrogram | video | sequence) and its channels."""

    kind: str
    channels: int
    encoder: str = ""  # the task's default encoder for this stream ("": ModelConfig.default_encoder)


@dataclass
class DataSpec:
    """What a method needs to know of its data; saved in ``config.json`` so a run can be rebuilt
    without its dataset."""

    task: str
    modalities: dict[str, ModalitySpec]
    n_train: int = 0  # training samples (memory banks)
    n_classes: int = 0  # label classes of the training split (supervised heads)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> "DataSpec":
        return DataSpec(d["task"], {k: ModalitySpec(**v) for k, v in d["modalities"].items()},
                        d.get("n_train", 0), d.get("n_classes", 0))


@dataclass
class ModelConfig:
    """Encoder choices: ``encoders`` maps a modality to a registered model (the others get
    ``default_encoder``). CMPC's official encoders: resnet34, 512-d."""

    encoders: dict = field(default_factory=dict)
    default_encoder: str = "resnet_tiny"
    embed_dim: int = 128
    # A projection head shared by both modalities (None: none, as in CMPC's released model). It
    # must be shared: evaluation uses the features before it, which are comparable across
    # modalities only if one head maps both into the loss space.
    proj_dim: int | None = None

    def encoder_for(self, modality: str, task_default: str = "") -> str:
        """The encoder named for ``modality``, else the task's default for it, else ``default_encoder``."""
        return self.encoders.get(modality) or task_default or self.default_encoder


def create_method(name: str, spec: DataSpec, model_cfg: ModelConfig | None = None, method_cfg=None) -> "Method":
    cls = METHODS.get(name)
    cls.check_fits(spec)
    return cls(spec, model_cfg or ModelConfig(), method_cfg or cls.Config())


class Method(nn.Module, ABC):
    name = "base"
    tasks: tuple[str, ...] = ()  # the tasks this method fits; empty = any task it can read
    ddp_unused_parameters = False  # True if some parameters get no gradient in some steps (DDP must look)

    @dataclass
    class Config:
        pass

    def __init__(self, spec: DataSpec, model_cfg: ModelConfig, cfg):
        super().__init__()
        self.spec, self.model_cfg, self.cfg = spec, model_cfg, cfg

    @classmethod
    def check_fits(cls, spec: DataSpec) -> None:
        """Refuse data of another task, naming both (``ValueError``)."""
        if cls.tasks and spec.task not in cls.tasks:
            raise ValueError(f"method {cls.name!r} does not fit task {spec.task!r}: it is for "
                             f"{', '.join(repr(t) for t in cls.tasks)}")

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Named outputs of a batch (subclasses add theirs)."""
        return {}

    @abstractmethod
    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, logs): ``logs["loss"]`` is the detached loss; every value a scalar tensor."""

    def trunk_modules(self) -> list[nn.Module]:
        """The encoders' feature extractors below their last linear layer (``TrainConfig.trunk_lr_scale``
        trains them slowly or, at 0, freezes them: a linear probe). Empty when the encoders say
        nothing of their trunk."""
        encoders = getattr(self, "encoders", {})
        return [m for enc in encoders.values() for m in (enc.trunk_modules() if hasattr(enc, "trunk_modules") else [])]

    def freeze_trunk(self) -> None:
        """No gradients for the trunk, and its BatchNorm statistics kept as loaded (eval mode in
        training too), so a probe sees exactly the pre-trained features."""
        self._frozen = self.trunk_modules()
        for p in (p for m in self._frozen for p in m.parameters()):
            p.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in getattr(self, "_frozen", []):
            m.eval()
        return self

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        raise ValueError(f"method {self.name!r} produces no embedding of {modality!r} (it is evaluated "
                         "through its other outputs)")

    def on_epoch_start(self, epoch: int, run_dir=None) -> dict:
        return {}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


class TwoStreamMethod(Method):
    """An encoder per modality of a two-modality task, embedding both into one space.

    ``self.modalities`` is the task's pair in order (e.g. ``("voice", "face")``); log names
    abbreviate it by initials (``inst_v2f``). A spectrogram arrives as (B, mels, frames) and gets
    its channel axis here.
    """

    def __init__(self, spec: DataSpec, model_cfg: ModelConfig, cfg):
        super().__init__(spec, model_cfg, cfg)
        self.modalities = tuple(spec.modalities)
        self.encoders = nn.ModuleDict({
            m: create_model(model_cfg.encoder_for(m, s.encoder), in_channels=s.channels, embed_dim=model_cfg.embed_dim,
                            proj_dim=None)
            for m, s in spec.modalities.items()})
        self.projection = (nn.Sequential(nn.ReLU(), nn.Linear(model_cfg.embed_dim, model_cfg.proj_dim))
                           if model_cfg.proj_dim else nn.Identity())
        a, b = self.modalities
        self.a2b, self.b2a = f"{a[0]}2{b[0]}", f"{b[0]}2{a[0]}"

    @classmethod
    def check_fits(cls, spec: DataSpec) -> None:
        super().check_fits(spec)
        if len(spec.modalities) != 2:
            raise ValueError(f"method {cls.name!r} pairs two modalities; task {spec.task!r} has "
                             f"{sorted(spec.modalities)}")

    @property
    def out_dim(self) -> int:
        return self.model_cfg.proj_dim or self.model_cfg.embed_dim

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1) if x.dim() == 3 else x  # (B, mels, frames) → (B, 1, mels, frames)

    def encode(self, batch: dict) -> dict[str, torch.Tensor]:
        """Each modality's embedding in the loss space (after the shared projection, if any)."""
        return {m: self.projection(self.encoders[m](self._input(batch[m]))) for m in self.modalities}

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return {f"emb.{m}": z for m, z in self.encode(batch).items()}

    @torch.no_grad()
    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised trunk features (before the projection head, as CMPC evaluates)."""
        return F.normalize(self.encoders[modality].features(self._input(x)), dim=1)
