"""Every registered encoder (timm-style: new models are tested automatically)."""
import pytest
import torch

from avlab.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("modality", ["face", "voice"])
def test_encoder_shapes_and_gradients(name, modality):
    torch.manual_seed(0)
    channels, shape = (3, (2, 3, 64, 64)) if modality == "face" else (1, (2, 1, 64, 101))
    model = create_model(name, in_channels=channels, embed_dim=32, proj_dim=16)
    x = torch.randn(shape)
    out = model(x)
    assert out.shape == (2, 16) and model.features(x).shape == (2, 32)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_voice_encoder_accepts_any_length():
    model = create_model("resnet_tiny", in_channels=1).eval()
    assert model(torch.randn(1, 1, 64, 57)).shape == model(torch.randn(1, 1, 64, 333)).shape


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(KeyError, match="resnet_tiny"):
        create_model("nope")
