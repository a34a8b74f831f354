"""A second image renderer of the synthetic world, written apart from `scene.render`, for evaluation only.

It shares only the scene's truth (shape names, colour names, centres, radii, rotation, filled) and draws
it another way, so a model that scores on its pictures has learnt the shapes, not one renderer's pixels:

- numpy signed-distance fields per pixel centre, anti-aliased by a smoothstep over about one pixel
  (the training renderer draws polygons with PIL at 4x and box-averages down);
- its own geometry: the square's half-side is 0.8 r (training: 0.85 r), the triangle's base orientation
  points down and the star's points down with an inner radius of 0.38 r (training: up, 0.45 r);
- its own shades of each colour name, its own paper-like backgrounds (blotches, grain, vignette),
  an optional soft focus instead of JPEG, and its own resolutions;
- digits drawn as seven-segment numerals rather than from a font.

Units: a scene's x and y are fractions of the width and height, radii fractions of m = min(width, height);
signed distances below are in those radius units until multiplied by m (pixels).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mm.synth.vocab import POSITIONS

if TYPE_CHECKING:
    from mm.synth.scene import Scene

# Per colour name a few shades a person still calls that colour; one is picked, then nudged a little.
SHADES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((205, 35, 50), (228, 52, 44), (188, 22, 32)),
    "green": ((32, 150, 70), (58, 176, 78), (22, 128, 52)),
    "blue": ((32, 88, 200), (52, 72, 228), (26, 62, 172)),
    "yellow": ((244, 208, 38), (250, 218, 62), (232, 196, 24)),
    "purple": ((150, 70, 182), (122, 52, 170), (160, 82, 200)),
    "orange": ((240, 130, 22), (250, 150, 42), (232, 118, 30)),
}
PAPERS = ((246, 240, 225), (238, 238, 235), (236, 241, 246), (251, 251, 248), (243, 236, 240))
INKS = ((28, 30, 48), (50, 38, 30), (35, 35, 35))
WIDTH = (112, 320)  # pixels
ASPECT = (0.65, 1.55)  # width / height
HEIGHT = (100, 320)  # pixels, after the aspect is applied

# Seven-segment numerals: segments a (top), b (top right), c (bottom right), d (bottom), e (bottom left),
# f (top left), g (middle).
SEGMENTS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc", 7: "abc",
            8: "abcdefg", 9: "abcdfg"}


def _smoothstep(d_px: np.ndarray) -> np.ndarray:
    """Coverage from a signed distance in pixels: 1 inside, 0 outside, a smooth ramp over ~1.2 px."""
    t = np.clip(0.5 - d_px / 1.2, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _sd_circle(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    return np.hypot(u, v) - r


def _sd_box(u: np.ndarray, v: np.ndarray, half: float) -> np.ndarray:
    qx, qy = np.abs(u) - half, np.abs(v) - half
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _sd_polygon(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Signed distance to a closed polygon (k, 2): distance to the nearest edge, negative inside by the
    crossing-number rule."""
    d2 = np.full(u.shape, np.inf)
    inside = np.zeros(u.shape, bool)
    for i in range(len(verts)):
        (ax, ay), (bx, by) = verts[i], verts[(i + 1) % len(verts)]
        ex, ey = bx - ax, by - ay
        wx, wy = u - ax, v - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
        d2 = np.minimum(d2, (wx - ex * t) ** 2 + (wy - ey * t) ** 2)
        crosses = (ay > v) != (by > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = ax + (v - ay) * ex / (by - ay)
        inside ^= crosses & (u < x_at)
    return np.where(inside, -1.0, 1.0) * np.sqrt(d2)


def _star(r: float) -> np.ndarray:
    # Five points, the first pointing down (+v is down on screen), inner radius 0.38 r.
    angles = math.pi / 2 + np.arange(10) * math.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, 0.38 * r)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _triangle(r: float) -> np.ndarray:
    # Equilateral, circumradius 0.98 r, one vertex pointing down before the scene's rotation.
    angles = math.pi / 2 + np.arange(3) * 2 * math.pi / 3
    return 0.98 * r * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _shape_distance(kind: str, u: np.ndarray, v: np.ndarray, r: float, rotation: float) -> np.ndarray:
    # Turn the sample points the other way instead of turning the shape: a counter-clockwise turn on
    # screen (y down) of the shape is a clockwise turn of the points in these axes.
    a = math.radians(rotation)
    c, s = math.cos(a), math.sin(a)
    ru, rv = c * u - s * v, s * u + c * v
    if kind == "circle":
        return _sd_circle(ru, rv, 0.97 * r)
    if kind == "square":
        return _sd_box(ru, rv, 0.8 * r)
    if kind == "triangle":
        return _sd_polygon(ru, rv, _triangle(r))
    if kind == "star":
        return _sd_polygon(ru, rv, _star(r))
    raise ValueError(f"unknown shape {kind!r}")


def _paper(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float: a paper tone with soft blotches, fine grain and a vignette."""
    base = np.array(PAPERS[int(rng.integers(len(PAPERS)))], np.float64) + rng.uniform(-4, 4, size=3)
    coarse = rng.standard_normal((5, 5))
    ys, xs = np.linspace(0, 4, h), np.linspace(0, 4, w)
    # Bilinear blow-up of the 5x5 field into blotches.
    y0, x0 = np.minimum(ys.astype(int), 3), np.minimum(xs.astype(int), 3)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    blot = (coarse[y0][:, x0] * (1 - fy) * (1 - fx) + coarse[y0 + 1][:, x0] * fy * (1 - fx)
            + coarse[y0][:, x0 + 1] * (1 - fy) * fx + coarse[y0 + 1][:, x0 + 1] * fy * fx)
    grain = rng.standard_normal((h, w)) * rng.uniform(1.0, 4.0)
    yy, xx = np.mgrid[0:h, 0:w]
    dist2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    vignette = 1 - rng.uniform(0.0, 0.12) * dist2 / 2
    out = (base[None, None, :] + (blot * rng.uniform(2, 7) + grain)[..., None]) * vignette[..., None]
    return np.clip(out, 0, 255)


def _segment_distance(u: np.ndarray, v: np.ndarray, digit: int, height: float, slant: float) -> np.ndarray:
    """Distance to a seven-segment numeral centred at 0 (radius units), strokes as line segments."""
    hw, hh = 0.28 * height, 0.5 * height  # half width and half height of the numeral
    ends = {
        "a": ((-hw, -hh), (hw, -hh)), "b": ((hw, -hh), (hw, 0)), "c": ((hw, 0), (hw, hh)),
        "d": ((-hw, hh), (hw, hh)), "e": ((-hw, 0), (-hw, hh)), "f": ((-hw, -hh), (-hw, 0)),
        "g": ((-hw, 0), (hw, 0)),
    }
    u = u + slant * v  # italic: the top leans right
    d = np.full(u.shape, np.inf)
    gap = 0.06 * height  # segments stop short of each other, as on a display
    for seg in SEGMENTS[digit]:
        (ax, ay), (bx, by) = ends[seg]
        length = math.hypot(bx - ax, by - ay)
        ex, ey = (bx - ax) / length, (by - ay) / length
        ax, ay, bx, by = ax + ex * gap, ay + ey * gap, bx - ex * gap, by - ey * gap
        t = np.clip((u - ax) * ex + (v - ay) * ey, 0, length - 2 * gap)
        d = np.minimum(d, np.hypot(u - ax - ex * t, v - ay - ey * t))
    return d


def _blend(img: np.ndarray, cover: np.ndarray, colour: np.ndarray, box: tuple[slice, slice]) -> None:
    patch = img[box]
    patch += (colour[None, None, :] - patch) * cover[..., None]


def _window(cx: float, cy: float, reach: float, w: int, h: int) -> tuple[slice, slice]:
    x0, x1 = max(0, int(cx - reach) - 2), min(w, int(cx + reach) + 3)
    y0, y1 = max(0, int(cy - reach) - 2), min(h, int(cy + reach) + 3)
    return slice(y0, y1), slice(x0, x1)


def render_alt(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """The evaluation picture of `scene`, every choice drawn from `rng`; the scene is left as it is."""
    aspect = rng.uniform(*ASPECT)
    w = int(rng.integers(WIDTH[0], WIDTH[1] + 1))
    h = int(np.clip(round(w / aspect), *HEIGHT))
    m = min(w, h)
    img = _paper(h, w, rng)
    for s in scene.shapes:
        shade = SHADES[s.colour][int(rng.integers(len(SHADES[s.colour])))]
        colour = np.clip(np.array(shade, np.float64) + rng.uniform(-8, 8, size=3), 0, 255)
        cx, cy = s.x * w, s.y * h
        box = _window(cx, cy, 1.25 * s.radius * m + 0.03 * m, w, h)
        yy, xx = np.mgrid[box[0], box[1]]
        u, v = (xx + 0.5 - cx) / m, (yy + 0.5 - cy) / m
        d = _shape_distance(s.shape, u, v, s.radius, s.rotation)
        if not s.filled:
            d = np.abs(d) - float(rng.uniform(0.012, 0.02))  # a stroke centred on the outline
        _blend(img, _smoothstep(d * m), colour, box)
    if scene.digit is not None and scene.digit_position is not None:
        row, col = divmod(list(POSITIONS).index(scene.digit_position), 3)
        cx, cy = (col + 0.5) / 3 * w, (row + 0.5) / 3 * h
        height = float(rng.uniform(0.16, 0.21))
        stroke = height * float(rng.uniform(0.06, 0.09))
        box = _window(cx, cy, 0.14 * m, w, h)
        yy, xx = np.mgrid[box[0], box[1]]
        d = _segment_distance((xx + 0.5 - cx) / m, (yy + 0.5 - cy) / m, scene.digit, height,
                              float(rng.uniform(0.0, 0.15))) - stroke
        ink = np.array(INKS[int(rng.integers(len(INKS)))], np.float64)
        _blend(img, _smoothstep(d * m), ink, box)
    if rng.random() < 0.4:  # soft focus: a 3x3 binomial blur
        k = np.array([1.0, 2.0, 1.0]) / 4
        pad = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
        img = sum(k[i] * pad[i:i + h, 1:-1] for i in range(3))
        pad = np.pad(img, ((0, 0), (1, 1), (0, 0)), mode="edge")
        img = sum(k[i] * pad[:, i:i + w] for i in range(3))
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8))
