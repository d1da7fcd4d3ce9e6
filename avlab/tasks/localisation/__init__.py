"""The sound-localisation task: where in the frame the sound comes from (CMAC; VGGSound / VGG-SS)."""
from avlab.tasks.localisation.task import SoundLocalisationTask, generate_sounding_objects  # noqa: F401

__all__ = ["SoundLocalisationTask", "generate_sounding_objects"]
