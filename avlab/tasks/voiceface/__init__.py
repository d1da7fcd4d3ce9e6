"""Voice-face: the CMPC family's task (dataset, protocol, oracle, demo tabs)."""
from avlab.tasks.voiceface.task import VoiceFaceTask, generate_talking_faces

__all__ = ["VoiceFaceTask", "generate_talking_faces"]
