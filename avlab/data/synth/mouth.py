"""Procedural grey mouth regions: a speaker's lips, teeth, skin and facial hair, in a shape.

What is rendered (and encoded) is the mouth region of interest itself — a small grey square, as
LRW pipelines crop it (LRW: 96² grey around the mouth; ours: ``roi`` pixels, 32 by default) — not
a whole face: the files stay small, decoding is cheap, and nothing outside the mouth is drawn
that a model could read the word from. A frame is drawn at twice the side in the speaker's own
coordinates and warped down through the clip's head pose (sway, tilt, scale), which also
anti-aliases it.

Speaker traits (fixed per speaker): skin and lip grey levels, lip thickness, mouth width and
position, teeth brightness, mouth depth, articulation strength (how wide they open), a beard or
moustache texture. These make identity visible in the mouth region — what the identity adversary
of ADC-SSL must remove.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # cv2 sub-pixel drawing: coordinates in 1/16 px
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class MouthParams:
    """A speaker's mouth appearance (grey levels 0..255, lengths in units of the ROI side)."""

    skin: float
    lip: float  # lip grey level
    lip_thickness: float
    width: float  # mouth half-width
    centre_y: float
    teeth: float
    cavity: float  # grey of the inside of the mouth
    articulation: float  # multiplies how far the jaw opens
    max_open: float  # inner opening at full "open"
    beard: float  # 0 = none; else the beard texture's contrast
    moustache: float
    tilt_deg: float  # a slight asymmetry of the mouth line

    @staticmethod
    def sample(rng: np.random.Generator) -> "MouthParams":
        skin = float(rng.uniform(70, 210))
        return MouthParams(
            skin=skin, lip=float(skin * rng.uniform(0.55, 0.85)), lip_thickness=float(rng.uniform(0.035, 0.07)),
            width=float(rng.uniform(0.22, 0.33)), centre_y=float(rng.uniform(0.5, 0.58)),
            teeth=float(rng.uniform(170, 245)), cavity=float(rng.uniform(10, 50)),
            articulation=float(rng.uniform(0.7, 1.2)), max_open=float(rng.uniform(0.24, 0.36)),
            beard=float(rng.uniform(15, 45)) if rng.random() < 0.25 else 0.0,
            moustache=float(rng.uniform(20, 60)) if rng.random() < 0.25 else 0.0,
            tilt_deg=float(rng.uniform(-4, 4)))


@dataclass(frozen=True)
class Pose:
    """Per-clip head motion and light: a slow sway of the ROI, a tilt, a scale, a brightness ramp."""

    sway: float  # amplitude, ROI units
    phase: float
    angle_deg: float
    scale: float
    gain: float
    ramp: float  # left-to-right lighting slope
    noise: float  # sensor noise std (grey levels)

    @staticmethod
    def sample(rng: np.random.Generator) -> "Pose":
        return Pose(sway=float(rng.uniform(0.0, 0.03)), phase=float(rng.uniform(0, 2 * np.pi)),
                    angle_deg=float(rng.uniform(-6, 6)), scale=float(rng.uniform(0.92, 1.08)),
                    gain=float(rng.uniform(0.8, 1.2)), ramp=float(rng.uniform(-0.25, 0.25)),
                    noise=float(rng.uniform(1.5, 5.0)))


def _px(x: float, y: float, side: int) -> tuple[int, int]:
    return int(round(x * side * _ONE)), int(round(y * side * _ONE))


def _ellipse(img, c, axes, colour, side, angle=0.0):
    ax = (max(int(axes[0] * side * _ONE), 1), max(int(axes[1] * side * _ONE), 1))
    cv2.ellipse(img, _px(*c, side), ax, angle, 0, 360, float(colour), -1, cv2.LINE_AA, _SHIFT)


def skin_layer(p: MouthParams, side: int, rng: np.random.Generator) -> np.ndarray:
    """The speaker's still skin at ``side`` px: shading under the nose and chin, facial hair."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    img = p.skin * (1.0 - 0.15 * np.exp(-((yy - 0.05) / 0.12) ** 2) - 0.1 * ((yy - 0.55) ** 2))
    if p.beard or p.moustache:
        texture = cv2.GaussianBlur(rng.standard_normal((side, side)), (0, 0), side / 40)
        texture /= texture.std() + 1e-9
        beard = p.beard * (yy > p.centre_y + 0.08) + p.moustache * (np.abs(yy - p.centre_y + 0.12) < 0.06)
        img = img - beard * (0.6 + 0.4 * texture)
    return img.astype(np.float32)


def draw_mouth(p: MouthParams, shape: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """One float32 frame at ``skin``'s side: lips, cavity, teeth and tongue for ``shape``
    (open, spread, round, teeth, tongue; see :mod:`avlab.data.synth.visemes`)."""
    side = skin.shape[0]
    opening, spread, rnd, teeth, tongue = (float(v) for v in shape)
    opening = float(np.clip(opening * p.articulation, 0.0, 1.2))
    img = skin.copy()
    cx, cy = 0.5, p.centre_y
    w = p.width * spread
    inner_h = p.max_open * opening * 0.5
    lip = p.lip_thickness * (1.0 + 0.6 * rnd)  # protruded lips look fuller
    _ellipse(img, (cx, cy), (w, inner_h + lip), p.lip, side, p.tilt_deg)
    if inner_h > 0.004:
        inner = np.zeros_like(img)
        _ellipse(inner, (cx, cy), (w * 0.82, inner_h), 1.0, side, p.tilt_deg)
        fill = np.full_like(img, p.cavity)
        rows = np.arange(side)[:, None] / side
        top = cy - inner_h
        fill[rows[:, 0] < top + 2 * inner_h * 0.45 * teeth] = p.teeth  # upper teeth from the top
        if tongue > 0:
            tongue_img = np.zeros_like(img)
            _ellipse(tongue_img, (cx, cy + inner_h * (1.0 - tongue)), (w * 0.45, inner_h * 0.6), 1.0, side)
            fill = fill * (1 - tongue_img) + tongue_img * (p.lip * 1.15)
        img = img * (1 - inner) + inner * fill
    elif teeth > 0.5:  # lip tucked under the teeth (f, v): a thin bright edge on the lip line
        edge = np.zeros_like(img)
        _ellipse(edge, (cx, cy - lip * 0.2), (w * 0.6, 0.012), 1.0, side, p.tilt_deg)
        img = img * (1 - edge * teeth) + edge * teeth * p.teeth
    return img


def render_roi(p: MouthParams, shapes: np.ndarray, pose: Pose, roi: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, roi, roi) uint8 grey mouth ROI: drawn at 2×, then warped down through the pose."""
    big = 2 * roi
    skin = skin_layer(p, big, rng)
    out = np.empty((len(shapes), roi, roi), np.uint8)
    ramp = 1.0 + pose.ramp * (np.arange(roi) / roi - 0.5)[None, :]
    for f, shape in enumerate(shapes):
        frame = draw_mouth(p, shape, skin)
        dx = pose.sway * np.sin(pose.phase + f / 5.0) * big
        dy = 0.6 * pose.sway * np.sin(pose.phase * 1.7 + f / 7.0) * big
        m = cv2.getRotationMatrix2D((big / 2, big / 2), pose.angle_deg + 1.5 * np.sin(pose.phase + f / 11.0),
                                    0.5 * pose.scale)
        m[:, 2] += (dx - big / 4, dy - big / 4)  # centre of the 2× canvas → centre of the ROI
        small = cv2.warpAffine(frame, m, (roi, roi), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        small = small * pose.gain * ramp + rng.normal(0, pose.noise, small.shape)
        out[f] = np.clip(small, 0, 255).astype(np.uint8)
    return out
