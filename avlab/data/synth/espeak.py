"""Speech with phoneme timings from espeak-ng, through its C API (ctypes).

The ``espeakng-loader`` wheel ships ``libespeak-ng.so`` and its data, so nothing comes from
apt. We use synchronous synthesis with a callback: it hands us the waveform in chunks and, with
``espeakINITIALIZE_PHONEME_EVENTS``, one event per phoneme with its start time in the audio.
That timing is what drives the mouth of the synthetic face (lip-sync).

espeak-ng keeps global state, so a process holds one engine; the generator's worker processes
each initialise their own. Some of that state carries from one utterance into the next (the same
sentence comes out a few samples different after another one, and no API call resets it), so each
utterance is spoken in a child forked from the engine as it was initialised, never from one that
has spoken: an utterance's audio is a pure function of its text and parameters, whatever the
process said before and however the worker pool hands out clips.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

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


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or failed to synthesise."""


@dataclass
class Utterance:
    """Synthesised speech: mono float32 waveform and phonemes as (start_s, mnemonic)."""

    audio: np.ndarray
    sample_rate: int
    phonemes: list[tuple[float, str]]
    words: list[float]


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


class Espeak:
    """One espeak-ng engine in this process (it is a process-global C library)."""

    _instance: "Espeak | None" = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._init()
        return cls._instance

    def _init(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EspeakError("espeakng-loader is not installed (pip install espeakng-loader)") from exc
        self._lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        data = _private_data_path(espeakng_loader.get_data_path())
        # The data path given to espeak is the folder that *contains* espeak-ng-data.
        parent = os.path.dirname(data)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, parent.encode(),
                                           _INITIALIZE_PHONEME_EVENTS | _DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (data path {data})")
        self.sample_rate = int(rate)
        if self._lib.espeak_SetVoiceByName(_VOICE) != 0:
            raise EspeakError(f"espeak-ng cannot load voice {_VOICE.decode()} from {data}")
        self._chunks: list[np.ndarray] = []
        self._phonemes: list[tuple[float, str]] = []
        self._words: list[float] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768.0)
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                self._phonemes.append((ev.audio_position / 1000.0, ev.id.string.decode("ascii", "replace")))
            elif ev.type == _EVENT_WORD:
                self._words.append(ev.audio_position / 1000.0)
            i += 1
        return 0

    def synth(self, text: str, rate_wpm: int = 170, pitch: int = 50, pitch_range: int = 50) -> Utterance:
        """Speak ``text``; returns the waveform at espeak's native rate and the phoneme times.

        Spoken in a forked child, so this process's engine stays as initialised and the result
        does not depend on what was spoken before (a few ms a call; in-process where there is
        no ``fork``, with that dependence)."""
        if not hasattr(os, "fork"):
            return self._synth_here(text, rate_wpm, pitch, pitch_range)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: speak, send the result, leave without running the parent's cleanup
            try:
                os.close(read)
                try:
                    answer = self._synth_here(text, rate_wpm, pitch, pitch_range)
                except Exception as exc:  # noqa: BLE001 - raised again in the parent
                    answer = EspeakError(f"{type(exc).__name__}: {exc}")
                with os.fdopen(write, "wb") as out:
                    out.write(pickle.dumps(answer))
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as result:
            data = result.read()
        _, status = os.waitpid(pid, 0)
        if not data:
            raise EspeakError(f"espeak-ng's process ended with status {status} while speaking {text!r}")
        answer = pickle.loads(data)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _synth_here(self, text: str, rate_wpm: int, pitch: int, pitch_range: int) -> Utterance:
        self._lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
        self._chunks, self._phonemes, self._words = [], [], []
        buf = text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EspeakError(f"espeak_Synth failed with code {err} for text {text!r}")
        self._lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        return Utterance(audio, self.sample_rate, list(self._phonemes), list(self._words))
