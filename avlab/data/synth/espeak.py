"""Speech with phoneme timings from espeak-ng, through its C API (ctypes).

The ``espeakng-loader`` wheel ships ``libespeak-ng.so`` and its data, so nothing comes from
apt. We use synchronous synthesis with a callback: it hands us the waveform in chunks and, with
``espeakINITIALIZE_PHONEME_EVENTS``, one event per phoneme with its start time in the audio.
That timing is what drives the mouth of the synthetic face (lip-sync).

The engine runs in a small server process (:mod:`avlab.data.synth.espeak_server`), one per
process that speaks (each generator worker starts its own), which speaks every utterance in a fresh
fork of the initialised engine: espeak-ng carries state from one utterance into the next, and this
makes an utterance's audio a pure function of its text and parameters, whatever was spoken before
and however the worker pool hands out clips.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from avlab.data.synth.espeak_server import receive, send


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or failed to synthesise."""


@dataclass
class Utterance:
    """Synthesised speech: mono float32 waveform and phonemes as (start_s, mnemonic)."""

    audio: np.ndarray
    sample_rate: int
    phonemes: list[tuple[float, str]]
    words: list[float]


class Espeak:
    """This process's espeak-ng server (started on first use; a forked child starts its own)."""

    _instance: "Espeak | None" = None

    def __new__(cls):
        if cls._instance is None or cls._instance._pid != os.getpid():
            cls._instance = super().__new__(cls)
            cls._instance._start()
        return cls._instance

    def _start(self) -> None:
        if not hasattr(os, "fork"):  # pragma: no cover - no fork (Windows): in-process, history-dependent
            raise EspeakError("avlab's speech synthesis needs os.fork (Linux or macOS)")
        self._pid = os.getpid()
        self._errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty library cannot block on it
        self._server = subprocess.Popen([sys.executable, "-m", "avlab.data.synth.espeak_server"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors)
        hello = self._answer("starting espeak-ng")
        self.sample_rate = int(hello["sample_rate"])

    def _answer(self, doing: str) -> dict:
        answer = receive(self._server.stdout)
        if answer is None:
            self._errors.seek(0)
            err = self._errors.read().decode(errors="replace").strip()[-2000:]
            raise EspeakError(f"espeak-ng's server stopped while {doing}: {err or 'no message'}")
        if "error" in answer:
            raise EspeakError(answer["error"])
        return answer

    def synth(self, text: str, rate_wpm: int = 170, pitch: int = 50, pitch_range: int = 50) -> Utterance:
        """Speak ``text``; returns the waveform at espeak's native rate and the phoneme times."""
        try:
            send(self._server.stdin, (text, int(rate_wpm), int(pitch), int(pitch_range)))
        except BrokenPipeError:
            pass  # the server is gone: _answer says why
        answer = self._answer(f"speaking {text!r}")
        audio = np.frombuffer(answer["samples"], np.int16).astype(np.float32) / 32768.0
        return Utterance(audio, answer["sample_rate"], answer["phonemes"], answer["words"])
