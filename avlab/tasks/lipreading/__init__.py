"""Lip reading: the ADC-SSL family's task (LRW layout, lip-words benchmark, word protocol, oracle)."""
from avlab.tasks.lipreading.task import LipReadingTask, generate_lip_words

__all__ = ["LipReadingTask", "generate_lip_words"]
