"""Tasks, registered by name: one package per kind of data and protocol.

Importing this package registers every task; :data:`avlab.registry.TASKS` imports it on first
lookup, so code below this layer (the loop, evaluation) finds tasks by name without importing them.
"""
from avlab.tasks.base import Task, register_task
from avlab.tasks import voiceface  # noqa: F401,E402  (registers "voice-face")
from avlab.tasks import localisation  # noqa: F401,E402  (registers "sound-localisation")
from avlab.tasks import lipreading  # noqa: F401,E402  (registers "lip-reading")

__all__ = ["Task", "register_task"]
