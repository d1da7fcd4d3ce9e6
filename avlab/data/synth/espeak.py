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
import threading
from dataclasses import dataclass

import numpy as np

from avlab.data.synth import espeak_server
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
    _lock = threading.Lock()  # one request at a time: answers come back in order on one pipe

    def __new__(cls):
        with cls._lock:
            if cls._instance is None or cls._instance._pid != os.getpid():
                engine = super().__new__(cls)
                engine._start()
                cls._instance = engine  # only once it has started: a failed start is tried again next time
            return cls._instance

    def _start(self) -> None:
        if not hasattr(os, "fork"):  # pragma: no cover - Windows
            raise EspeakError("avlab's speech synthesis needs os.fork (Linux or macOS)")
        self._pid = os.getpid()
        self._errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty library cannot block on it
        # Run by its file: it imports only the standard library, so it works whatever put avlab on
        # this interpreter's path.
        self._server = subprocess.Popen([sys.executable, espeak_server.__file__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._errors)
        try:
            self.sample_rate = int(self._answer("starting espeak-ng")["sample_rate"])
        except BaseException:
            self._stop()
            raise

    def _stop(self) -> None:
        self._server.kill()
        self._server.wait()
        for stream in (self._server.stdin, self._server.stdout, self._errors):
            try:
                stream.close()
            except OSError:  # a request still buffered for the dead server: nowhere to flush it
                pass

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
        with self._lock:
            try:
                try:
                    send(self._server.stdin, (text, int(rate_wpm), int(pitch), int(pitch_range)))
                except BrokenPipeError:
                    pass  # the server is gone: _answer says why
                answer = self._answer(f"speaking {text!r}")
            except BaseException:
                # A dead server, or this request interrupted (Ctrl-C, a timeout) with its answer
                # unread, which the next request would take for its own: start afresh next time.
                self._stop()
                if type(self)._instance is self:
                    type(self)._instance = None
                raise
        audio = np.frombuffer(answer["samples"], np.int16).astype(np.float32) / 32768.0
        return Utterance(audio, answer["sample_rate"], answer["phonemes"], answer["words"])


def _forget_in_child() -> None:
    """A forked child shares its parent's server pipes: let go of them, and start its own server
    when it first speaks."""
    engine, Espeak._instance, Espeak._lock = Espeak._instance, None, threading.Lock()
    if engine is not None:
        for stream in (engine._server.stdin, engine._server.stdout):
            try:
                stream.close()
            except OSError:
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
