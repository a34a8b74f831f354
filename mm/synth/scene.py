"""Images of the synthetic world: 1-4 shapes, optionally a digit, with known truth.

A `Scene` holds the truth in picture-independent units: a shape's centre (x, y) is a fraction of the
width and height, its radius a fraction of min(width, height), so one scene is the same truth at any
resolution or aspect ratio. Scenes are sampled so that every attribute has one right answer:

- `position` is the 3x3 region (thirds of width and height) holding the centre, and no centre lies within
  `MARGIN` of a third line; each shape has its own region.
- `size` follows the radius, drawn from two separated ranges (`RADIUS`).
- Shapes never overlap each other, the digit or the picture edge (rejection sampling).

Two renderers of this module: `render` (the training renderer: anti-aliased, varied background, shade,
outline width, resolution, aspect and JPEG quality, drawn from an rng and recorded in `scene.style`) and
`render_classic` (the original 128x128 look of the first world, for the shipped model's regression test).
`classic=True` in `sample_scene` draws the original grid scenes with the original rng calls.
Everything is drawn from a numpy Generator, so a seed fixes the scene and its picture.
"""

from __future__ import annotations

import colorsys
import functools
import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mm.synth.vocab import COLOURS, POSITIONS, SHAPES, SIZES

CANVAS = 128  # pixels of a classic picture; the tiny encoder sees 64
CELL = CANVAS / 3

# Radius ranges (fraction of min(width, height)); the gap between them keeps `size` unambiguous.
RADIUS: dict[str, tuple[float, float]] = {"small": (0.06, 0.09), "large": (0.13, 0.17)}
MARGIN = 0.05  # no centre within this of a 1/3 line, so the region is never in doubt
GAP = 0.04  # between extents: room for two outline strokes (either renderer) and a visible gap
EDGE = 0.025  # between an extent and the picture edge: room for one outline stroke
DIGIT_EXTENT = 0.14  # radius kept free around the digit (its glyph box fits inside)
SQUARE_HALF = 0.85  # a square's half-side as a fraction of its radius (corners reach 1.2 r)
SHAPE_COUNTS = ((1, 2, 3, 4), (0.3, 0.3, 0.27, 0.13))  # shapes per new scene and their probabilities
CLASSIC_RADIUS = {"large": 0.45 / 3, "small": 0.24 / 3}  # the classic world's radii (of a cell)


@dataclass
class Shape:
    shape: str  # key of vocab.SHAPES
    colour: str  # key of vocab.COLOURS
    size: str  # "small" | "large", follows the radius (two separated ranges)
    position: str  # key of vocab.POSITIONS: the 3x3 region holding the centre (x, y)
    x: float = 0.5  # centre, fraction of the width (0 left .. 1 right)
    y: float = 0.5  # centre, fraction of the height (0 top .. 1 bottom)
    radius: float = 0.15  # fraction of min(width, height)
    rotation: float = 0.0  # degrees, counter-clockwise on screen
    filled: bool = True  # False: outlined


@dataclass
class Scene:
    shapes: list[Shape]
    digit: int | None = None
    digit_position: str | None = None
    jitter: list[tuple[float, float]] = field(default_factory=list)  # classic scenes: offset in a cell
    style: dict = field(default_factory=dict)  # the renderer's choices for the last picture drawn

    def unique(self, **attrs: str) -> Shape | None:
        """The one shape with these attributes, or None when zero or several match."""
        hits = [s for s in self.shapes if all(getattr(s, k) == v for k, v in attrs.items())]
        return hits[0] if len(hits) == 1 else None


def region_of(x: float, y: float) -> str:
    """The POSITIONS name of the 3x3 region holding (x, y), fractions of width and height."""
    col, row = min(int(x * 3), 2), min(int(y * 3), 2)
    return list(POSITIONS)[row * 3 + col]


def extent(s: Shape) -> float:
    """Radius of the circle that holds the drawn shape at any rotation, a fraction of min(w, h)."""
    return s.radius * (SQUARE_HALF * math.sqrt(2) if s.shape == "square" else 1.0)


def _region_centre(position: str) -> tuple[float, float]:
    row, col = divmod(list(POSITIONS).index(position), 3)
    return (col + 0.5) / 3, (row + 0.5) / 3


def sample_scene(rng: np.random.Generator, *, classic: bool = False) -> Scene:
    """A random scene; `classic=True`: the first world's grid scenes, drawn exactly as it drew them."""
    return _sample_classic(rng) if classic else _sample_varied(rng)


def _sample_classic(rng: np.random.Generator) -> Scene:
    # The rng calls below are the first world's, in its order: a seed gives the scene it always gave.
    n = int(rng.integers(1, 4))
    cells = list(rng.permutation(len(POSITIONS)))
    names = list(POSITIONS)
    shapes = [
        Shape(
            shape=str(rng.choice(list(SHAPES))),
            colour=str(rng.choice(list(COLOURS))),
            size=str(rng.choice(list(SIZES))),
            position=names[cells[i]],
        )
        for i in range(n)
    ]
    digit = digit_position = None
    if rng.random() < 0.5:
        digit = int(rng.integers(0, 10))
        digit_position = names[cells[n]]
    jitter = [(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08))) for _ in shapes]
    for s, (jx, jy) in zip(shapes, jitter):
        cx, cy = _region_centre(s.position)
        s.x, s.y = cx + jx / 3, cy + jy / 3
        s.radius = CLASSIC_RADIUS[s.size]
    return Scene(shapes, digit, digit_position, jitter)


def _sample_varied(rng: np.random.Generator) -> Scene:
    while True:  # rejection: a draw whose shapes cannot all be placed is dropped whole
        scene = _try_varied(rng)
        if scene is not None:
            return scene


def _try_varied(rng: np.random.Generator) -> Scene | None:
    names = list(POSITIONS)
    n = int(rng.choice(SHAPE_COUNTS[0], p=SHAPE_COUNTS[1]))
    regions = [names[i] for i in rng.permutation(len(names))]
    digit = digit_position = None
    taken: list[tuple[float, float, float]] = []  # (x, y, extent) of everything placed so far
    if rng.random() < 0.4:
        digit = int(rng.integers(0, 10))
        digit_position = regions[n]
        taken.append((*_region_centre(digit_position), DIGIT_EXTENT))
    shapes = []
    for position in regions[:n]:
        kind = str(rng.choice(list(SHAPES)))
        size = str(rng.choice(list(SIZES)))
        s = Shape(
            shape=kind,
            colour=str(rng.choice(list(COLOURS))),
            size=size,
            position=position,
            radius=float(rng.uniform(*RADIUS[size])),
            # Squares turn a little (a square at 45 degrees reads as a diamond); the rest any way.
            rotation=float(rng.uniform(-25, 25) if kind == "square" else rng.uniform(-180, 180)),
            filled=bool(rng.random() < 0.7),
        )
        if not _place(s, taken, rng):
            return None
        taken.append((s.x, s.y, extent(s)))
        shapes.append(s)
    return Scene(shapes, digit, digit_position)


def _place(s: Shape, taken: list[tuple[float, float, float]], rng: np.random.Generator, tries: int = 30) -> bool:
    """Set s.x, s.y inside its region (away from the third lines and the edge) clear of `taken`."""
    row, col = divmod(list(POSITIONS).index(s.position), 3)
    e = extent(s)

    def span(k: int) -> tuple[float, float]:
        lo = k / 3 + MARGIN if k > 0 else e + EDGE
        hi = (k + 1) / 3 - MARGIN if k < 2 else 1 - e - EDGE
        return lo, hi

    (x0, x1), (y0, y1) = span(col), span(row)
    if x0 > x1 or y0 > y1:
        return False
    for _ in range(tries):
        x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        # Distances in the unit square are a lower bound of those in any aspect ratio (the radius is a
        # fraction of the shorter side), so no overlap here means none in any picture.
        if all(math.hypot(x - tx, y - ty) >= e + te + GAP for tx, ty, te in taken):
            s.x, s.y = x, y
            return True
    return False


# ---------------------------------------------------------------------------------------------------
# Drawing helpers shared by both PIL renderers (and video.py).


def _centre(position: str, jitter: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    idx = list(POSITIONS).index(position)
    row, col = divmod(idx, 3)
    return (col + 0.5 + jitter[0]) * CELL, (row + 0.5 + jitter[1]) * CELL


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if kind == "square":
        r *= SQUARE_HALF
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if kind == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if kind == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    raise ValueError(kind)


def _rotated(points: list[tuple[float, float]], cx: float, cy: float, degrees: float) -> list[tuple[float, float]]:
    # Screen y points down, so a counter-clockwise turn on screen is a negative angle in these axes.
    a = -math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return [(cx + (px - cx) * c - (py - cy) * s, cy + (px - cx) * s + (py - cy) * c) for px, py in points]


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_classic(scene: Scene) -> Image.Image:
    """The first world's 128x128 picture: flat colours on white, no anti-aliasing, shapes upright.

    Classic scenes come out pixel for pixel as the first world drew them; other scenes are drawn from
    their x, y and radius, still upright and filled.
    """
    img = Image.new("RGB", (CANVAS, CANVAS), "white")
    draw = ImageDraw.Draw(img)
    for i, s in enumerate(scene.shapes):
        if scene.jitter:
            cx, cy = _centre(s.position, scene.jitter[i])
            r = CELL * (0.45 if s.size == "large" else 0.24)
        else:
            cx, cy, r = s.x * CANVAS, s.y * CANVAS, s.radius * CANVAS
        fill = COLOURS[s.colour][1]
        if s.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(s.shape, cx, cy, r), fill=fill)
    if scene.digit is not None and scene.digit_position is not None:
        cx, cy = _centre(scene.digit_position)
        draw.text((cx, cy), str(scene.digit), font=_font(int(CELL * 0.9)), fill=(40, 40, 40), anchor="mm")
    return img


# ---------------------------------------------------------------------------------------------------
# The training renderer.

SUPERSAMPLE = 4  # drawn this many times larger, then box-averaged down: anti-aliased edges
SIDE = (96, 256)  # pixels per side of a varied picture
ASPECT = (0.6, 1.7)  # width / height of a varied picture
TEXTURES = ("plain", "noise", "gradient", "stripes")
JPEG_P = 0.5  # chance a picture goes through JPEG
JPEG_QUALITY = (25, 90)


def _plain_style() -> dict:
    """The choices of `render(scene)` without an rng: square, white, exact colours, no JPEG."""
    return {"width": CANVAS, "height": CANVAS, "background": (255, 255, 255), "texture": "plain",
            "texture_strength": 0.0, "jpeg_quality": None, "outline": 0.025, "digit_scale": 0.8,
            "digit_offset": (0.0, 0.0), "digit_colour": (40, 40, 40), "shades": None}


def _shade(rgb: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    """A nearby shade of the same colour name: hue within ~4 degrees, saturation and value within ~12%."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    h = (h + rng.uniform(-0.012, 0.012)) % 1.0
    s = min(1.0, s * rng.uniform(0.85, 1.05))
    v = min(1.0, v * rng.uniform(0.88, 1.05))
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))


def _sample_style(scene: Scene, rng: np.random.Generator) -> dict:
    aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
    width = int(rng.integers(SIDE[0], SIDE[1] + 1))
    height = int(np.clip(round(width / aspect), *SIDE))
    tint = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.12), rng.uniform(0.9, 1.0))
    return {
        "width": width,
        "height": height,
        "background": tuple(int(round(c * 255)) for c in tint),
        "texture": str(rng.choice(TEXTURES)),
        "texture_strength": float(rng.uniform(3, 10)),  # grey levels
        "texture_seed": int(rng.integers(2**31)),
        "jpeg_quality": int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if rng.random() < JPEG_P else None,
        "outline": float(rng.uniform(0.012, 0.035)),  # fraction of min(width, height)
        "digit_scale": float(rng.uniform(0.55, 0.78)),  # font size, fraction of a region's shorter side
        "digit_offset": (float(rng.uniform(-0.01, 0.01)), float(rng.uniform(-0.01, 0.01))),
        "digit_colour": tuple(int(c) for c in rng.integers(20, 90, size=3)),
        "shades": [_shade(COLOURS[s.colour][1], rng) for s in scene.shapes],
    }


def _background(style: dict) -> np.ndarray:
    """(H, W, 3) uint8: the tint with its texture."""
    h, w = style["height"], style["width"]
    bg = np.empty((h, w, 3), np.float32)
    bg[:] = style["background"]
    strength, kind = style["texture_strength"], style["texture"]
    if kind == "plain":
        return bg.astype(np.uint8)
    rng = np.random.default_rng(style["texture_seed"])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "noise":
        bg += rng.standard_normal((h, w, 1)).astype(np.float32) * strength * 0.5
    elif kind == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(a) + yy * math.sin(a)) / max(h, w)  # about -1 .. 1 across the picture
        bg += (t * strength * 1.5)[..., None] * rng.uniform(0.5, 1.0, size=3).astype(np.float32)
    elif kind == "stripes":
        a, period = rng.uniform(0, math.pi), rng.uniform(5, 18)
        t = (xx * math.cos(a) + yy * math.sin(a)) * (2 * math.pi / period)
        bg += (np.sin(t) * strength * 0.5)[..., None]
    return np.clip(bg, 0, 255).astype(np.uint8)


def render(scene: Scene, rng: np.random.Generator | None = None) -> Image.Image:
    """The training picture of `scene`: anti-aliased, in varied styles drawn from `rng`.

    Without an rng the style is plain (128x128, white, exact colours, no JPEG). The choices made are
    stored in `scene.style`.
    """
    style = _plain_style() if rng is None else _sample_style(scene, rng)
    scene.style = style
    w, h, k = style["width"], style["height"], SUPERSAMPLE
    m = min(w, h) * k  # the unit of radii, in supersampled pixels
    img = Image.fromarray(_background(style)).resize((w * k, h * k), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    width = max(k, round(style["outline"] * m))
    for i, s in enumerate(scene.shapes):
        colour = style["shades"][i] if style["shades"] else COLOURS[s.colour][1]
        cx, cy, r = s.x * w * k, s.y * h * k, s.radius * m
        line = max(k, min(width, round(0.35 * r)))
        if s.shape == "circle":
            box = [cx - r, cy - r, cx + r, cy + r]
            if s.filled:
                draw.ellipse(box, fill=colour)
            else:
                draw.ellipse(box, outline=colour, width=line)
            continue
        pts = _rotated(_polygon(s.shape, cx, cy, r), cx, cy, s.rotation)
        if s.filled:
            draw.polygon(pts, fill=colour)
        else:
            # A closed line centred on the outline, round joints so star points stay sharp but whole.
            draw.line([*pts, pts[0], pts[1]], fill=colour, width=line, joint="curve")
    if scene.digit is not None and scene.digit_position is not None:
        fx, fy = _region_centre(scene.digit_position)
        dx, dy = style["digit_offset"]
        size = max(8, round(style["digit_scale"] * m / 3))
        draw.text(((fx * w + dx * min(w, h)) * k, (fy * h + dy * min(w, h)) * k), str(scene.digit),
                  font=_font(size), fill=style["digit_colour"], anchor="mm")
    img = img.resize((w, h), Image.Resampling.BOX)
    if style["jpeg_quality"] is not None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=style["jpeg_quality"])
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img
