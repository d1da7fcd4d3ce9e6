"""Errors raised in worker processes reach the parent, typed and naming the file, and never hang it."""
import multiprocessing as mp
import os
import pickle
import time

import pytest

from avlab.data import media
from avlab.parallel import PoolStalledError, WorkerError, imap_watched

ERRORS = sorted({media.MediaError, *media.MediaError.__subclasses__(),
                 *(s for c in media.MediaError.__subclasses__() for s in c.__subclasses__())}, key=lambda c: c.__name__)
CLIP = "/data/vox/dev/mp4/id00012/abc/00001.mp4"


def _raise_media_error(name):
    raise getattr(media, name)(CLIP, "a reason")


class _TwoArgError(Exception):  # what MediaError used to be: cannot be rebuilt from its args
    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")


def _raise_unpicklable(item):
    raise _TwoArgError(item, "broken")


def _hang_on_stuck(item):
    if item == "stuck.mp4":
        time.sleep(3600)
    return item


def _die_on_stuck(item):
    if item == "stuck.mp4":
        os._exit(1)  # a decoder crash takes the worker down; the pool replaces it and loses the task
    return item


def test_every_media_error_is_picklable_and_takes_one_message():
    assert {c.__name__ for c in ERRORS} >= {"CorruptMediaError", "MissingMediaError", "NoAudioError",
                                           "NoVideoError", "TooShortError", "WrongRateError"}
    for cls in ERRORS:
        exc = pickle.loads(pickle.dumps(cls(CLIP, "a reason")))
        assert (type(exc), exc.path, exc.reason, str(exc)) == (cls, CLIP, "a reason", f"{CLIP}: a reason")
        one = pickle.loads(pickle.dumps(cls(f"Caught it in a worker: {CLIP}: a reason")))
        assert type(one) is cls and one.path is None and CLIP in str(one)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_media_errors_cross_a_multiprocessing_pool(method):
    with mp.get_context(method).Pool(1) as pool:
        for cls in ERRORS:
            with pytest.raises(cls) as err:
                pool.apply_async(_raise_media_error, (cls.__name__,)).get(timeout=60)  # hung before the fix
            assert err.value.path == CLIP and CLIP in str(err.value)


def test_media_errors_cross_a_dataloader_worker():
    import torch.utils.data as tud

    class Raising(tud.Dataset):  # sample i raises the i-th error type
        def __len__(self):
            return len(ERRORS)

        def __getitem__(self, i):
            raise ERRORS[i](CLIP, "a reason")

    batches = iter(tud.DataLoader(Raising(), batch_size=None, num_workers=1, timeout=60,
                                  multiprocessing_context="fork"))
    for cls in ERRORS:  # torch re-raises each as cls(one message)
        with pytest.raises(cls, match="00001.mp4: a reason"):
            next(batches)
    with pytest.raises(StopIteration):  # and the loader ends cleanly
        next(batches)


def test_imap_watched_keeps_input_order():
    assert list(imap_watched(abs, range(-20, 0), workers=2, stall_seconds=60)) == list(range(20, 0, -1))
    assert list(imap_watched(abs, [-1, -2], workers=0)) == [1, 2]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_imap_watched_raises_a_workers_media_error_naming_the_file(tmp_path, method):
    missing = str(tmp_path / "gone.mp4")
    start = time.monotonic()
    with pytest.raises(media.MissingMediaError, match="gone.mp4: file does not exist") as err:
        list(imap_watched(media.probe, [missing], workers=1, stall_seconds=60, start_method=method))
    assert err.value.path == missing and time.monotonic() - start < 30
    assert any("gone.mp4" in note for note in err.value.__notes__)


def test_imap_watched_turns_an_unpicklable_error_into_worker_error():
    with pytest.raises(WorkerError, match="_TwoArgError: clip7.mp4: broken"):
        list(imap_watched(_raise_unpicklable, ["clip7.mp4"], workers=1, stall_seconds=30))


@pytest.mark.parametrize("fn", [_hang_on_stuck, _die_on_stuck])
def test_watchdog_names_the_item_a_stalled_pool_waits_on(fn):
    start = time.monotonic()
    with pytest.raises(PoolStalledError, match="stuck.mp4") as err:
        list(imap_watched(fn, ["a.mp4", "stuck.mp4", "b.mp4"], workers=1, stall_seconds=1.5))
    assert err.value.pending[0] == "stuck.mp4"
    assert time.monotonic() - start < 15


def _collect_garbage(item):
    import gc

    gc.collect()  # frees, in the child, whatever the parent left as cyclic garbage
    return item


def test_forking_while_a_failed_decoders_garbage_is_uncollected_does_not_hang(tmp_path):
    """A caught decoding error keeps its decoder alive through its traceback; a pool forked before
    the garbage collector frees it inherits the decoder but not FFmpeg's decoder threads, and the
    child that frees it waited for them forever (seen in the test suite; with ``_single_threaded``
    patched out this stalls). Decoders now run in the calling thread."""
    import gc

    import numpy as np

    clip = tmp_path / "cut.mp4"
    media.write_mp4(clip, np.zeros((50, 64, 64, 3), np.uint8), np.zeros(32_000, np.float32))
    data = clip.read_bytes()
    clip.write_bytes(data[:len(data) // 2] + data[-2000:])  # frames missing: decoding fails half-way
    gc.disable()
    try:
        try:
            media.read_frames_pyav(clip)
        except media.MediaError as exc:
            exc.cycle = exc  # unreachable once the except block ends, freed only by the collector
        assert list(imap_watched(_collect_garbage, [1, 2], workers=1, stall_seconds=20, start_method="fork")) == [1, 2]
    finally:
        gc.enable()
