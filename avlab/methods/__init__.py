"""Methods, registered by name (solo-learn style): one small file each, sharing encoders and losses."""
from avlab.methods.base import METHODS, CrossModalMethod, create_method, register_method
from avlab.methods import cid, cmpc, supervised  # noqa: F401,E402  (register)

__all__ = ["METHODS", "CrossModalMethod", "create_method", "register_method"]
