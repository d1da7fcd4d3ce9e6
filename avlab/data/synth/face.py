"""Procedural, anti-aliased faces drawn with OpenCV.

A face is drawn in its own coordinates (unit = image side, origin at the face centre) and
mapped to pixels by the clip's pose (rotation, scale, shift), so the same identity looks the same
under any pose. Shared latents (gender, age, size) drive visible traits — jaw and brows, hair
length and beard, greying and wrinkles, face proportions — so that an ideal observer can read them
off the face; private factors (skin tone, hair colour and style, eye spacing and colour, nose,
mouth width, ears) make each identity distinct.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import cv2
import numpy as np

_SHIFT = 4  # sub-pixel precision of cv2 drawing: coordinates in 1/16 px
_ONE = 1 << _SHIFT

HAIR_COLOURS = np.array([[20, 20, 25], [40, 30, 60], [30, 60, 110], [60, 100, 170],
                         [90, 140, 200], [30, 40, 140], [70, 70, 80]], dtype=np.float64)  # BGR
EYE_COLOURS = np.array([[60, 40, 20], [120, 90, 40], [40, 90, 40], [30, 50, 90], [80, 80, 80]],
                       dtype=np.float64)
SKIN_DARK = np.array([45, 70, 110.0])
SKIN_LIGHT = np.array([175, 200, 240.0])


@dataclass(frozen=True)
class FaceParams:
    """Visible traits of one identity (everything but pose, light and expression)."""

    gender: int  # 1 = "male"-like, 0 = "female"-like
    age: float  # 0..1
    size: float  # standard normal
    skin_tone: float  # 0 (dark) .. 1 (light)
    hair_colour: int
    hair_style: int  # 0 short, 1 side part, 2 long, 3 bun, 4 shaved
    eye_spacing: float  # 0..1
    eye_size: float  # 0..1
    eye_colour: int
    nose_length: float  # 0..1
    mouth_width: float  # 0..1
    ear_size: float  # 0..1
    beard: bool

    @staticmethod
    def sample(gender: int, age: float, size: float, rng: np.random.Generator) -> "FaceParams":
        long_hair_p = 0.15 if gender else 0.75
        style = int(rng.choice([2, 3]) if rng.random() < long_hair_p else rng.choice([0, 1, 4], p=[.45, .45, .1]))
        return FaceParams(
            gender=gender, age=age, size=size, skin_tone=float(rng.uniform()),
            hair_colour=int(rng.integers(len(HAIR_COLOURS))), hair_style=style,
            eye_spacing=float(rng.uniform()), eye_size=float(rng.uniform()),
            eye_colour=int(rng.integers(len(EYE_COLOURS))), nose_length=float(rng.uniform()),
            mouth_width=float(rng.uniform()), ear_size=float(rng.uniform()),
            beard=bool(gender and rng.random() < 0.4),
        )


@dataclass(frozen=True)
class Scene:
    """Per-clip nuisance: pose, light, background and sensor noise."""

    angle_deg: float
    scale: float
    shift: tuple[float, float]
    background: tuple[float, float, float]
    light_dir: float  # radians
    light_strength: float
    brightness: float
    noise_std: float

    @staticmethod
    def sample(rng: np.random.Generator) -> "Scene":
        return Scene(
            angle_deg=float(rng.uniform(-8, 8)), scale=float(rng.uniform(0.9, 1.1)),
            shift=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04))),
            background=tuple(float(c) for c in rng.uniform(40, 220, 3)),
            light_dir=float(rng.uniform(0, 2 * np.pi)), light_strength=float(rng.uniform(0.0, 0.35)),
            brightness=float(rng.uniform(0.8, 1.15)), noise_std=float(rng.uniform(1.0, 5.0)),
        )


class _Canvas:
    """Draws face-space primitives onto an image through the clip's pose.

    Coordinates are mapped with plain floats, not numpy: a frame has ~25 primitives of a few points
    each, and numpy's per-call overhead was most of its drawing time. numpy's matrix product may
    round the last bit differently (BLAS kernels fuse multiply-adds), which does not reach a pixel:
    6,000 frames of random faces and poses came out identical to the numpy version's."""

    def __init__(self, img: np.ndarray, scene: Scene, sway: tuple[float, float]):
        self.img = img
        self.side = img.shape[0]
        theta = np.deg2rad(scene.angle_deg)
        self.k = scene.scale * self.side
        self.rot = tuple(float(v) for v in (np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)))
        self.centre = tuple(float(v) for v in self.side * (0.5 + np.array(scene.shift) + np.array(sway)))
        self.angle = scene.angle_deg

    def _px(self, pts) -> list[tuple[float, float]]:
        """Face-space points → pixel coordinates in 1/16 px (rotated, scaled, shifted)."""
        (r00, r01, r10, r11), (cx, cy), k = self.rot, self.centre, self.k
        return [(((x * r00 + y * r01) * k + cx) * _ONE, ((x * r10 + y * r11) * k + cy) * _ONE) for x, y in pts]

    def ellipse(self, c, axes, colour, angle=0.0, thickness=-1, start=0, end=360):
        centre = tuple(int(v) for v in self._px([c])[0])
        ax = tuple(max(int(a * self.k * _ONE), 1) for a in axes)
        th = thickness if thickness < 0 else max(int(round(thickness * self.k)), 1)
        cv2.ellipse(self.img, centre, ax, self.angle + angle, start, end, colour, th, cv2.LINE_AA, _SHIFT)

    def poly(self, pts, colour):
        cv2.fillPoly(self.img, [np.array(self._px(pts)).astype(np.int32)], colour, cv2.LINE_AA, _SHIFT)

    def line(self, a, b, colour, thickness):
        pa, pb = (tuple(int(v) for v in p) for p in self._px([a, b]))
        th = max(int(round(thickness * self.k)), 1)
        cv2.line(self.img, pa, pb, colour, th, cv2.LINE_AA, _SHIFT)


@lru_cache(maxsize=16)  # the same for every frame of a clip; read-only, as it is shared
def _colours(p: FaceParams) -> MappingProxyType:
    skin = SKIN_DARK + (SKIN_LIGHT - SKIN_DARK) * p.skin_tone
    skin = skin * (1.0 - 0.12 * p.age)
    grey = np.array([190, 190, 195.0])
    hair = HAIR_COLOURS[p.hair_colour] * (1 - p.age**2) + grey * p.age**2
    as_t = lambda c: tuple(float(v) for v in np.clip(c, 0, 255))  # noqa: E731
    return MappingProxyType({
        "skin": as_t(skin), "shade": as_t(skin * 0.8), "hair": as_t(hair), "eye": as_t(EYE_COLOURS[p.eye_colour]),
        "lip": as_t(skin * np.array([0.7, 0.6, 1.05])), "mouth": (30.0, 20.0, 70.0), "white": (235.0, 235.0, 235.0),
        "line": as_t(skin * 0.55)})


def draw_face(p: FaceParams, scene: Scene, side: int, mouth_open: float, blink: float = 0.0,
              sway: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Render one BGR uint8 frame of identity ``p`` with the mouth ``mouth_open`` (0..1) open."""
    img = np.empty((side, side, 3), np.uint8)
    img[:] = np.array(scene.background, np.uint8)
    cv = _Canvas(img, scene, sway)
    col = _colours(p)
    # Proportions: size widens the face and neck; gender squares the jaw.
    hw = 0.25 + 0.025 * np.clip(p.size, -2, 2) + 0.015 * p.gender
    hh = 0.33
    jaw = 0.55 + 0.25 * p.gender

    cv.poly([[-0.09 - 0.03 * p.size / 2, 0.2], [0.09 + 0.03 * p.size / 2, 0.2], [0.14, 0.6], [-0.14, 0.6]],
            col["shade"])  # neck
    if p.hair_style in (2, 3):  # long hair / bun behind the head
        back = (0.05, hh * 0.3) if p.hair_style == 2 else (0.0, -hh * 0.95)
        axes = (hw * 1.18, hh * 1.05) if p.hair_style == 2 else (hw * 0.45, hh * 0.3)
        cv.ellipse(back, axes, col["hair"])
    ear = 0.045 + 0.03 * p.ear_size
    for sx in (-1, 1):
        cv.ellipse((sx * hw * 0.98, 0.0), (ear * 0.6, ear), col["shade"])
    cv.ellipse((0, -0.05), (hw, hh * 0.85), col["skin"])  # cranium
    cv.poly([[-hw, -0.05], [hw, -0.05], [hw * (0.55 + 0.4 * jaw), hh * 0.55],
             [hw * jaw * 0.55, hh * 0.92], [-hw * jaw * 0.55, hh * 0.92], [-hw * (0.55 + 0.4 * jaw), hh * 0.55]],
            col["skin"])  # jaw
    if p.beard:
        cv.ellipse((0, hh * 0.6), (hw * 0.75, hh * 0.35), col["hair"], start=0, end=180)
    # Hair on top.
    if p.hair_style == 4:
        cv.ellipse((0, -hh * 0.42), (hw * 0.98, hh * 0.5), col["hair"], start=180, end=360, thickness=0.012)
    else:
        top = hh * (0.55 if p.hair_style != 1 else 0.6)
        cv.ellipse((0, -hh * 0.38), (hw * 1.04, top), col["hair"], start=180, end=360)
        if p.hair_style == 1:
            cv.poly([[-hw, -hh * 0.4], [hw * 0.3, -hh * 0.4], [-hw * 0.9, -hh * 0.05]], col["hair"])
    if p.age > 0.6:  # wrinkles
        for k in range(1 + int((p.age - 0.6) * 8)):
            y = -hh * 0.45 + 0.02 * k
            cv.line((-hw * 0.4, y), (hw * 0.4, y), col["line"], 0.006)
    # Eyes and brows.
    ex = hw * (0.34 + 0.16 * p.eye_spacing)
    er = 0.028 + 0.018 * p.eye_size
    lid = max(0.15, 1.0 - blink)
    brow_w = 0.010 + 0.014 * p.gender
    for sx in (-1, 1):
        cv.ellipse((sx * ex, -0.04), (er * 1.5, er * lid), col["white"])
        cv.ellipse((sx * ex, -0.04), (er * 0.75, er * 0.75 * lid), col["eye"])
        cv.ellipse((sx * ex, -0.04), (er * 0.3, er * 0.3 * lid), (10.0, 10.0, 10.0))
        cv.line((sx * (ex - er * 1.6), -0.095 - 0.01 * p.gender), (sx * (ex + er * 1.6), -0.105),
                col["hair"], brow_w)
    # Nose.
    nl = 0.07 + 0.06 * p.nose_length
    cv.poly([[0, -0.02], [0.028, nl], [-0.028, nl]], col["shade"])
    # Mouth: its opening is the lip-sync signal.
    mw = 0.06 + 0.05 * p.mouth_width
    my = nl + 0.08
    mo = 0.004 + 0.05 * float(np.clip(mouth_open, 0, 1))
    cv.ellipse((0, my), (mw, mo + 0.012), col["lip"])
    cv.ellipse((0, my), (mw * 0.85, mo), col["mouth"])
    return _light(img, scene)


@lru_cache(maxsize=16)  # the same for every frame of a clip; read-only, as it is shared
def _light_gain(scene: Scene, side: int) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side] / side - 0.5
    ramp = 1.0 + scene.light_strength * (np.cos(scene.light_dir) * xx + np.sin(scene.light_dir) * yy) * 2
    gain = (scene.brightness * ramp)[..., None]
    gain.setflags(write=False)
    return gain


def _light(img: np.ndarray, scene: Scene) -> np.ndarray:
    out = img.astype(np.float32) * _light_gain(scene, img.shape[0])
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def add_noise(img: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    noisy = rng.normal(0, std, img.shape)
    noisy += img
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)
