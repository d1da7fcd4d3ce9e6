"""Every registered encoder (timm-style: new models are tested automatically)."""
import pytest
import torch

from avlab.models import create_model, list_models
from avlab.registry import MODELS

IMAGE_INPUTS = {"face": (3, (2, 3, 64, 64)), "voice": (1, (2, 1, 64, 101))}


def example_inputs(name: str) -> dict:
    """A model's own ``example_input`` (in_channels, shape) when it declares one (e.g. a video
    encoder), else the image-shaped face and voice inputs."""
    own = getattr(MODELS.get(name), "example_input", None)
    return {"own": own} if own else IMAGE_INPUTS


@pytest.mark.parametrize("name,modality", [(n, m) for n in list_models() for m in example_inputs(n)])
def test_encoder_shapes_and_gradients(name, modality):
    torch.manual_seed(0)
    channels, shape = example_inputs(name)[modality]
    width = getattr(MODELS.get(name), "embed_width", 32)  # fixed by encoders with no final linear layer
    model = create_model(name, in_channels=channels, embed_dim=width, proj_dim=16)
    x = torch.randn(shape)
    out = model(x)
    assert out.shape == (2, 16) and model.features(x).shape == (2, width)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_voice_encoder_accepts_any_length():
    model = create_model("resnet_tiny", in_channels=1).eval()
    assert model(torch.randn(1, 1, 64, 57)).shape == model(torch.randn(1, 1, 64, 333)).shape


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(KeyError, match="resnet_tiny"):
        create_model("nope")


def test_an_encoder_without_final_linear_embeds_its_pooled_non_negative_trunk():
    model = create_model("resnet_tiny_nofc", in_channels=3, proj_dim=None).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model.features(x), model.feature_map(x).mean(dim=(2, 3))) and (model.features(x) >= 0).all()
    with pytest.raises(ValueError, match="pass --embed-dim 128"):
        create_model("resnet_tiny_nofc", embed_dim=64)
