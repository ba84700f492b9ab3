"""The offline world: a procedural, captioned 32x32 image world with ground-truth labels.

Three populations share one renderer:

* **public** images — one shape (5 kinds) in one colour (6) with a fill (solid, outlined,
  striped) on a background (white, gray, black). Captions name the shape and colour and
  sometimes the fill and background. Two things never occur in the public split: a few
  shape/colour pairs (``HELD_OUT_PAIRS``, to measure compositional generalisation) and
  the **private style** (striped fill on a black background), the stand-in for an
  artist's style that the pretrained model has never been shown, and the **proxy
  style** (outlined on gray), a second unseen style declared public for tuning.
* **archive** images — two solid shapes of nameable colours on a flat background,
  captioned with a place-like title and what is drawn ("the quiet harbor of marlow ,
  a red circle left of a blue star on gray"; the layout is :mod:`benchmark.world.scenes`,
  the captions :mod:`benchmark.world.archive`). Most are
  seen once in pretraining; the **memorized** few are duplicated many times, so the
  model learns to copy them, as Stable Diffusion copies heavily duplicated LAION
  images; **motif** scenes share a small emblem at a fixed place under captions that
  name it (local memorization).
* **private** images — the private style, generated only for adaptation datasets.

Every function is a pure function of its seed, so the world is reproducible bit-for-bit
and the recipe version (``WORLD_RECIPE_VERSION``) names it.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from benchmark.world import scenes as S

WORLD_RECIPE_VERSION = "tinyworld-v5"
IMAGE_SIZE = 32
_SUPERSAMPLE = 4

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (45, 85, 225),
    "yellow": (240, 205, 40),
    "purple": (145, 55, 190),
    "orange": (245, 135, 25),
}
BACKGROUNDS: dict[str, int] = {"white": 240, "gray": 128, "black": 18}
FILLS: tuple[str, ...] = ("solid", "outlined", "striped")
PRIVATE_STYLE = {"fill": "striped", "background": "black"}
# A second style never seen in pretraining, declared public: where hyperparameters are tuned.
PROXY_STYLE = {"fill": "outlined", "background": "gray"}
# Shape/colour pairs that never appear in pretraining: prompts for them test composition.
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("circle", "orange"),
    ("square", "purple"),
    ("triangle", "blue"),
    ("star", "green"),
    ("cross", "yellow"),
)

PUBLIC_PREFIXES = ("", "a photo of ", "a drawing of ", "a painting of ", "an image of ", "a picture of ")
# Named public styles: LAION captions say "... in the style of <artist>", so Stable Diffusion
# knows what that slot of a prompt does before textual inversion fills it with a new name.
# Each public (fill, background) pair gets a name; the private and proxy styles get none.
PUBLIC_STYLE_NAMES: dict[tuple[str, str], str] = {
    ("solid", "white"): "aldren", ("solid", "gray"): "brisco", ("solid", "black"): "corvane",
    ("outlined", "white"): "delmont", ("outlined", "black"): "esquil",
    ("striped", "white"): "farrow", ("striped", "gray"): "galen",
}
STYLE_CAPTION_PROB = 0.3  # share of public captions that name the style instead of fill and background
# Style captions of pretraining, in the form textual-inversion prompts take ("{caption}" is
# "a red circle"; "{}" a style's name).
STYLE_TEMPLATES = (
    "{caption} in the style of {}",
    "a painting of {caption} in the style of {}",
    "a picture of {caption} in the style of {}",
    "a painting in the style of {}",
    "a drawing in the style of {}",
    "an image in the style of {}",
)
OBJECT_TEMPLATES = ("a photo of {}", "a picture of {}", "an image of {}", "a photo of the {}")


@dataclass(frozen=True)
class ShapeAttributes:
    """Ground truth of one single-shape image (public or private)."""

    shape: str
    colour: str
    fill: str
    background: str

    @property
    def is_private_style(self) -> bool:
        return self.fill == PRIVATE_STYLE["fill"] and self.background == PRIVATE_STYLE["background"]

    @property
    def is_proxy_style(self) -> bool:
        return self.fill == PROXY_STYLE["fill"] and self.background == PROXY_STYLE["background"]


def article(word: str) -> str:
    """'a' or 'an' before ``word``."""
    return "an" if word[0] in "aeiou" else "a"


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a unit-size shape in local coordinates (v points up)."""
    if kind == "circle":
        return u**2 + v**2 <= 1.0
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.82
    if kind == "triangle":
        return (v >= -0.75) & (np.abs(u) <= 1.0 * (0.95 - v) / 1.7)
    if kind == "star":
        rho = np.sqrt(u**2 + v**2)
        theta = np.arctan2(u, v)
        return rho <= 0.42 + 0.58 * ((1 + np.cos(5 * theta)) / 2) ** 2.5
    if kind == "cross":
        return ((np.abs(u) <= 0.34) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.34) & (np.abs(u) <= 0.95))
    raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPES}")


def _pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    n = IMAGE_SIZE * _SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / _SUPERSAMPLE  # in output-pixel units
    x, y = np.meshgrid(coords, coords)
    return x, y


_GRID_X, _GRID_Y = _pixel_grid()


def _downsample(canvas: np.ndarray) -> np.ndarray:
    n = IMAGE_SIZE
    s = _SUPERSAMPLE
    return canvas.reshape(n, s, n, s, 3).mean(axis=(1, 3))


def _paint_shape(canvas, kind, fill, colour, cx, cy, radius, stripe_gap_colour):
    u = (_GRID_X - cx) / radius
    v = -(_GRID_Y - cy) / radius
    outer = _shape_mask(kind, u, v)
    if fill == "solid":
        canvas[outer] = colour
    elif fill == "outlined":
        inner = _shape_mask(kind, u / 0.58, v / 0.58)
        canvas[outer & ~inner] = colour
    elif fill == "striped":
        band = (np.floor(_GRID_Y / 4.0) % 2) == 0  # 4-pixel horizontal bands
        canvas[outer & band] = colour
        canvas[outer & ~band] = stripe_gap_colour
    else:
        raise ValueError(f"unknown fill {fill!r}; expected one of {FILLS}")


def render_shape_image(attrs: ShapeAttributes, rng: np.random.Generator) -> np.ndarray:
    """Render one single-shape image as uint8 HxWx3, with jittered position, size, hue."""
    level = BACKGROUNDS[attrs.background] + rng.uniform(-8, 8)
    canvas = np.full((IMAGE_SIZE * _SUPERSAMPLE,) * 2 + (3,), level, dtype=np.float32)
    colour = np.clip(np.array(COLOURS[attrs.colour], dtype=np.float32) + rng.uniform(-12, 12, 3), 0, 255)
    radius = rng.uniform(10.0, 13.0)
    cx, cy = 16 + rng.uniform(-2.5, 2.5, size=2)
    _paint_shape(canvas, attrs.shape, attrs.fill, colour, cx, cy, radius, stripe_gap_colour=235.0)
    return np.clip(_downsample(canvas), 0, 255).round().astype(np.uint8)


def render_archive_image(seed: int, layout_seed: int | None = None, motif: int | None = None) -> np.ndarray:
    """Render one archive scene (:mod:`benchmark.world.scenes`) as uint8 HxWx3.

    ``layout_seed`` keeps the content of ``seed`` and redraws where and how large the
    shapes are; ``motif`` adds that motif at its fixed place (local memorization).
    """
    scene = S.make_scene(seed, SHAPES, list(COLOURS), layout_seed, motif)
    rng = np.random.default_rng([seed if layout_seed is None else layout_seed, 2])
    level = BACKGROUNDS[scene.background] + rng.uniform(-8, 8)
    canvas = np.full((IMAGE_SIZE * _SUPERSAMPLE,) * 2 + (3,), level, dtype=np.float32)
    for p in (scene.first, scene.second):
        colour = np.clip(np.array(COLOURS[p.colour], dtype=np.float32) + rng.uniform(-12, 12, 3), 0, 255)
        _paint_shape(canvas, p.shape, "solid", colour, p.cx, p.cy, p.radius, stripe_gap_colour=235.0)
    if motif is not None:
        for shape, colour, radius in S.motif_parts(motif, SHAPES, list(COLOURS)):
            _paint_shape(canvas, shape, "solid", np.array(COLOURS[colour], dtype=np.float32),
                         *S.MOTIF_CENTRE, radius, stripe_gap_colour=235.0)
    return np.clip(_downsample(canvas), 0, 255).round().astype(np.uint8)


def public_caption(attrs: ShapeAttributes, rng: np.random.Generator, drop_prob: float = 0.3) -> str:
    """Caption a public image.

    With probability ``STYLE_CAPTION_PROB`` the caption is a style template naming the
    image's style (``PUBLIC_STYLE_NAMES``), e.g. "a red circle in the style of farrow";
    otherwise it describes the image, dropping the fill and the background words each
    with probability ``drop_prob``.
    """
    if rng.random() < STYLE_CAPTION_PROB:
        template = STYLE_TEMPLATES[rng.integers(len(STYLE_TEMPLATES))]
        name = PUBLIC_STYLE_NAMES[(attrs.fill, attrs.background)]
        caption = f"{article(attrs.colour)} {attrs.colour} {attrs.shape}"
        return template.replace("{caption}", caption).format(name)
    fill_word = "" if attrs.fill == "solid" or rng.random() < drop_prob else attrs.fill + " "
    words = f"{attrs.colour} {fill_word}{attrs.shape}"
    if rng.random() >= drop_prob:
        words += f" on a {attrs.background} background"
    prefix = PUBLIC_PREFIXES[rng.integers(len(PUBLIC_PREFIXES))]
    return f"{prefix}{article(attrs.colour)} {words}".strip()


def full_caption(attrs: ShapeAttributes) -> str:
    fill_word = "" if attrs.fill == "solid" else attrs.fill + " "
    return f"{article(attrs.colour)} {attrs.colour} {fill_word}{attrs.shape} on a {attrs.background} background"


def public_attribute_space() -> list[ShapeAttributes]:
    """Every attribute combination allowed in pretraining."""
    out = []
    for shape, colour, fill, bg in itertools.product(SHAPES, COLOURS, FILLS, BACKGROUNDS):
        a = ShapeAttributes(shape, colour, fill, bg)
        if (shape, colour) in HELD_OUT_PAIRS or a.is_private_style or a.is_proxy_style:
            continue
        out.append(a)
    return out


def attributes_dict(attrs: ShapeAttributes) -> dict[str, str]:
    return asdict(attrs)
