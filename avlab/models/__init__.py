from avlab.models import lip, resnet  # noqa: F401  (registers the models)
from avlab.models import maps  # noqa: F401,E402  (feature-map ResNets for attention)
from avlab.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
