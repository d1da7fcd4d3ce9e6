"""Methods, registered by name (solo-learn style): one small file each, sharing encoders and losses."""
from avlab.methods.base import (DataSpec, Method, ModalitySpec, ModelConfig, TwoStreamMethod, create_method,
                                register_method)
from avlab.registry import METHODS
from avlab.methods import cid, cmpc, supervised  # noqa: F401,E402  (register)
from avlab.methods import adc_ssl  # noqa: F401,E402  (registers "adc-ssl", lip reading)
from avlab.methods import cmac  # noqa: F401,E402  (registers "cmac", sound localisation)

__all__ = ["METHODS", "DataSpec", "Method", "ModalitySpec", "ModelConfig", "TwoStreamMethod", "create_method",
           "register_method"]
