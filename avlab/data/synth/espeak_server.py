"""espeak-ng in a small process of its own that speaks each utterance in a fresh fork.

espeak-ng keeps state from one utterance to the next that no API call resets (not
``espeak_Initialize`` after ``espeak_Terminate``, not reselecting the voice, not
``espeak_ng_SetRandSeed``, not a priming utterance): a sentence spoken after a question comes out up
to 0.075 of full scale different from the same sentence spoken first. So this server initialises the
engine once and never speaks itself: each request is spoken by a child forked from it, whose state is
the freshly initialised engine's, and the result is a pure function of the text and parameters.

It imports nothing but the standard library (no numpy), so that a fork costs about a millisecond; a
fork of a process that has imported torch costs tens. Run by :class:`avlab.data.synth.espeak.Espeak`
by its file path; requests and answers are length-prefixed pickles on
stdin / stdout.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import pickle
import shutil
import signal
import struct
import sys
import tempfile

# espeak_AUDIO_OUTPUT / options / event types / parameters, from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
# Our voice variant: espeak's pitch "flutter" walks a static phase that is never reset, so the
# same text would come out a few samples different depending on what the process spoke before.
# With flutter off, synthesis is a pure function of (text, rate) and the generator is deterministic.
_VARIANT = "name avlab\nlanguage variant\nflutter 0\n"
_VOICE = b"en-us+avlab"


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))



class Engine:
    """The espeak-ng library, initialised with our voice, speaking in this process."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a broken install
            raise RuntimeError("espeakng-loader is not installed (pip install espeakng-loader)") from exc
        self._lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        data = _private_data_path(espeakng_loader.get_data_path())
        # The data path given to espeak is the folder that *contains* espeak-ng-data.
        self._lib.espeak_Initialize.restype = ctypes.c_int
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, os.path.dirname(data).encode(),
                                           _INITIALIZE_PHONEME_EVENTS | _DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (data path {data})")
        self.sample_rate = int(rate)
        if self._lib.espeak_SetVoiceByName(_VOICE) != 0:
            raise RuntimeError(f"espeak-ng cannot load voice {_VOICE.decode()} from {data}")
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * n))  # int16 samples, native order
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                self._phonemes.append((ev.audio_position / 1000.0, ev.id.string.decode("ascii", "replace")))
            elif ev.type == _EVENT_WORD:
                self._words.append(ev.audio_position / 1000.0)
            i += 1
        return 0

    def speak(self, text: str, rate_wpm: int, pitch: int, pitch_range: int) -> dict:
        """int16 samples (bytes) at ``sample_rate``, phonemes as (start_s, mnemonic), word starts."""
        self._lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
        self._chunks, self._phonemes, self._words = [], [], []
        buf = text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} for text {text!r}")
        self._lib.espeak_Synchronize()
        return {"samples": b"".join(self._chunks), "sample_rate": self.sample_rate,
                "phonemes": list(self._phonemes), "words": list(self._words)}


def _private_data_path(source: str) -> str:
    """A copy of espeak-ng-data with our variant, at a short path.

    A copy because the wheel's folder may be read-only and espeak-ng keeps its data path in a
    160-byte buffer (a deep venv path makes it exit the process). Made once per machine, atomically.
    """
    tag = hashlib.sha1((source + _VARIANT).encode()).hexdigest()[:10]
    target = os.path.join(tempfile.gettempdir(), f"avlab-espeak-{tag}")
    if not os.path.isfile(os.path.join(target, "espeak-ng-data", "voices", "!v", "avlab")):
        tmp = tempfile.mkdtemp(prefix="avlab-espeak-tmp-")
        shutil.copytree(source, os.path.join(tmp, "espeak-ng-data"))
        with open(os.path.join(tmp, "espeak-ng-data", "voices", "!v", "avlab"), "w") as f:
            f.write(_VARIANT)
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(target, "espeak-ng-data")



def send(stream, obj) -> None:
    data = pickle.dumps(obj)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def receive(stream):
    """The next message, or None at the end of the stream."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    body = stream.read(size)
    return pickle.loads(body) if len(body) == size else None  # cut short: the sender died


def spoken_in_a_fork(engine: Engine, request: tuple) -> dict:
    """``engine.speak(*request)`` in a child, so that ``engine`` itself never speaks."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            try:
                answer = engine.speak(*request)
            except Exception as exc:  # noqa: BLE001 - sent to the client as the error
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            with os.fdopen(write, "wb") as out:
                send(out, answer)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as child:
        answer = receive(child)
    _, status = os.waitpid(pid, 0)
    if answer is None:
        return {"error": f"espeak-ng's process ended with code {os.waitstatus_to_exitcode(status)} while "
                         f"speaking {request[0]!r}"}
    return answer


def main() -> None:
    # Ctrl-C reaches the whole process group; the client decides what to do, and the server ends
    # when its requests pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = sys.stdin.buffer
    # The protocol gets its own copy of stdout; fd 1 then points at stderr, so that anything the C
    # library prints cannot land inside an answer.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        engine = Engine()
    except Exception as exc:  # noqa: BLE001 - the client raises it
        send(answers, {"error": f"{type(exc).__name__}: {exc}"})
        return
    send(answers, {"sample_rate": engine.sample_rate})
    while (request := receive(requests)) is not None:
        send(answers, spoken_in_a_fork(engine, request))


if __name__ == "__main__":
    main()
