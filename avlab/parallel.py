"""Worker pools for data generation and decoding."""
from __future__ import annotations

import multiprocessing as mp


def pool(workers: int):
    """A process pool: fork where available (workers only need numpy/OpenCV/PyAV/espeak, and fork
    works from scripts without a ``__main__`` guard), spawn elsewhere."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(method).Pool(workers)
