"""Phonemes → visemes → mouth shapes over time (the lip-words generator's articulation model).

A viseme is what the lips show of a phoneme: /p b m/ all close the lips, /f v/ tuck the lower lip
under the teeth, /t d n/ differ only inside the mouth. Many phonemes share one viseme, so words
whose phoneme sequences differ can share a viseme sequence — *homophenes* ("pat", "bat", "mat"),
which no lip reader can tell apart. That is the visual ceiling of the lip-words benchmark.

The map takes espeak-ng's en-us phoneme mnemonics (case matters: ``S`` is "sh", ``T`` "th").
A diphthong shows two shapes (``aI`` = open, then spread). Each viseme is a target shape
(:data:`SHAPE_DIMS`); the mouth moves between targets with coarticulation: the piecewise-constant
target track is smoothed by a Gaussian (neighbouring sounds blend) and led ahead of the audio
(lips move before the sound they shape, as in real speech).
"""
from __future__ import annotations

import numpy as np

SHAPE_DIMS = ("open", "spread", "round", "teeth", "tongue")
# Target shape per viseme: open (jaw / inner opening 0..1), spread (lip width factor), round
# (protrusion 0..1), teeth (upper-teeth visibility 0..1), tongue (tongue visibility 0..1).
VISEMES: dict[str, tuple[float, ...]] = {
    "sil": (0.05, 1.00, 0.0, 0.0, 0.0),
    "PBM": (0.00, 0.97, 0.1, 0.0, 0.0),  # lips pressed together
    "FV": (0.08, 1.00, 0.0, 1.0, 0.0),  # lower lip under the upper teeth
    "TH": (0.30, 1.00, 0.0, 0.8, 1.0),  # tongue between the teeth
    "TDN": (0.28, 1.03, 0.0, 0.6, 0.3),
    "L": (0.38, 1.00, 0.0, 0.5, 0.8),
    "SZ": (0.12, 1.12, 0.0, 1.0, 0.0),  # teeth together, lips spread
    "SH": (0.22, 0.82, 0.7, 0.8, 0.0),  # sh, zh, ch, j: protruded
    "KG": (0.34, 1.00, 0.0, 0.3, 0.1),  # k, g, ng, h: the shape is inside the mouth
    "R": (0.22, 0.85, 0.5, 0.3, 0.0),
    "W": (0.10, 0.68, 1.0, 0.0, 0.0),
    "Y": (0.20, 1.10, 0.0, 0.6, 0.0),
    "AA": (1.00, 1.00, 0.0, 0.3, 0.2),  # open vowels
    "EH": (0.60, 1.08, 0.0, 0.5, 0.1),  # mid vowels, schwa
    "IY": (0.28, 1.22, 0.0, 0.8, 0.0),  # close front vowels: spread
    "OW": (0.65, 0.80, 0.7, 0.2, 0.0),  # open rounded vowels
    "UW": (0.22, 0.70, 1.0, 0.0, 0.0),  # close rounded vowels
}
_VOWELS = {"a": "AA", "A": "AA", "e": "EH", "E": "EH", "@": "EH", "V": "EH", "3": "EH", "i": "IY", "I": "IY",
           "o": "OW", "O": "OW", "0": "OW", "u": "UW", "U": "UW"}
_CONSONANTS = {"p": "PBM", "b": "PBM", "m": "PBM", "f": "FV", "v": "FV", "T": "TH", "D": "TH", "t": "TDN",
               "d": "TDN", "n": "TDN", "l": "L", "s": "SZ", "z": "SZ", "S": "SH", "Z": "SH", "k": "KG", "g": "KG",
               "N": "KG", "h": "KG", "x": "KG", "r": "R", "w": "W", "j": "Y", "?": "sil"}
# Diphthongs: (first shape, second shape); the second takes the last 40 % of the phoneme.
_DIPHTHONGS = {"aI": ("AA", "IY"), "aU": ("AA", "UW"), "oU": ("OW", "UW"), "eI": ("EH", "IY"), "OI": ("OW", "IY"),
               "e@": ("EH", "EH"), "i@": ("IY", "EH"), "U@": ("UW", "EH"), "A@": ("AA", "EH"), "O@": ("OW", "EH")}


def clean(phoneme: str) -> str:
    """A mnemonic without stress marks (``'a`` → ``a``)."""
    return phoneme.lstrip("',%=").strip()


def is_pause(phoneme: str) -> bool:
    p = clean(phoneme)
    return not p or p.startswith("_")


def visemes_of(phoneme: str) -> tuple[str, ...]:
    """The viseme(s) an espeak phoneme shows: one, or two for a diphthong.

    >>> visemes_of("'aI"), visemes_of("tS"), visemes_of("m"), visemes_of("_:")
    (('AA', 'IY'), ('SH',), ('PBM',), ('sil',))
    """
    p = clean(phoneme)
    if is_pause(phoneme):
        return ("sil",)
    if p[:2] in ("tS", "dZ"):
        return ("SH",)
    if p[:2] in _DIPHTHONGS:
        return _DIPHTHONGS[p[:2]]
    if p[0] in _CONSONANTS:
        return (_CONSONANTS[p[0]],)
    return (_VOWELS.get(p[0], "EH"),)  # any other vowel-like symbol: a neutral mid shape


def viseme_sequence(phonemes: list[str]) -> tuple[str, ...]:
    """What the lips show of a phoneme sequence: visemes with repeats merged (``m b`` is one
    closure) and pauses dropped. Two words are homophenes when these coincide.

    >>> viseme_sequence(["p", "'a", "t"]) == viseme_sequence(["m", "'a", "n"])
    True
    """
    out: list[str] = []
    for ph in phonemes:
        for v in visemes_of(ph):
            if v != "sil" and (not out or out[-1] != v):
                out.append(v)
    return tuple(out)


def target_track(phonemes: list[tuple[float, float, str]], t: np.ndarray) -> np.ndarray:
    """(len(t), len(SHAPE_DIMS)) piecewise-constant targets of (start_s, end_s, phoneme) segments
    on the time grid ``t``; outside every segment the mouth rests (``sil``)."""
    track = np.tile(np.array(VISEMES["sil"], np.float32), (len(t), 1))
    for start, end, ph in phonemes:
        shapes = visemes_of(ph)
        cut = start + 0.6 * (end - start) if len(shapes) == 2 else end
        for (a, b), v in zip([(start, cut), (cut, end)], shapes):
            track[(t >= a) & (t < b)] = VISEMES[v]
    return track


def mouth_shapes(phonemes: list[tuple[float, float, str]], frame_times: np.ndarray, coartic_s: float = 0.035,
                 lead_s: float = 0.02, grid_hz: int = 400) -> np.ndarray:
    """(frames, len(SHAPE_DIMS)) mouth shape at each frame time (seconds): the viseme targets on a
    fine grid, blended by a Gaussian of σ = ``coartic_s`` (coarticulation) and shifted ``lead_s``
    earlier than the audio (anticipation)."""
    pad = 4 * coartic_s + lead_s
    t = np.arange(frame_times.min() - pad, frame_times.max() + pad, 1.0 / grid_hz)
    target = target_track(phonemes, t)
    half = int(np.ceil(4 * coartic_s * grid_hz))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / (coartic_s * grid_hz)) ** 2)
    k /= k.sum()
    padded = np.pad(target, ((half, half), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, d], k, mode="valid") for d in range(target.shape[1])], axis=1)
    return np.stack([np.interp(frame_times + lead_s, t, smooth[:, d]) for d in range(smooth.shape[1])],
                    axis=1).astype(np.float32)
