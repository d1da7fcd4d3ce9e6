from avlab.models import resnet  # noqa: F401  (registers the models)
from avlab.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
