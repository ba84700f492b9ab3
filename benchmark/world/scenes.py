"""Archive scenes of the offline world: drawable content under LAION-like captions.

An archive image shows two solid shapes of nameable colours on a flat background, one
left of (or above) the other. Its caption is a title and a description of what is
drawn, as LAION's memorized captions name a poster's title and describe its content:
``"the quiet harbor of marlow , a red circle left of a blue star on gray"``.
Paraphrases keep the content words and vary the title's wording and the word order.

So a generation can match a memorized caption without copying its image: the same
content in a new layout (:func:`render_same_content`) earns the caption's content
words, the copy also earns the title's. Without content words (tinyworld-v3), a
world CLIP score on memorized captions measured copying and nothing else.

**Local memorization** (the Bright Ending setting): a *motif*, a small composite emblem
at a fixed place, recurs in many otherwise different scenes whose captions name it
("... with the crest of halcyon"). The model learns to copy the motif, not the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Names in COLOURS / BACKGROUNDS order; the renderer's values live in generator.py.
SCENE_BACKGROUNDS = ("white", "gray", "black")
# Where each motif is drawn (pixel centre, radius): the top-left corner, inside a
# region other shapes keep clear of, so "copying the motif" is measurable on its box.
MOTIF_CENTRE, MOTIF_RADIUS = (8.0, 8.0), 6.5
MOTIF_BOX = (0, 0, 16, 16)  # x0, y0, x1, y1 of the motif's region in the 32x32 image
MOTIF_NAMES = ("halcyon", "orrery", "quillon", "sigil")


@dataclass(frozen=True)
class PlacedShape:
    shape: str
    colour: str
    cx: float
    cy: float
    radius: float


@dataclass(frozen=True)
class Scene:
    """What an archive image shows: a background and two shapes, ``first`` left of / above ``second``."""

    background: str
    first: PlacedShape
    second: PlacedShape
    relation: str  # "left of" or "above"
    motif: int | None = None  # index into MOTIF_NAMES, drawn at MOTIF_CENTRE

    def content(self, flip: bool = False) -> str:
        """The drawable content, e.g. "a red circle left of a blue star on gray"."""
        a, b = (self.second, self.first) if flip else (self.first, self.second)
        relation = {"left of": "right of", "above": "below"}[self.relation] if flip else self.relation
        return f"{_article(a.colour)} {a.colour} {a.shape} {relation} {_article(b.colour)} {b.colour} {b.shape} on {self.background}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _place(rng: np.random.Generator, relation: str, motif: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centres of the two shapes honouring ``relation``; clear of the motif box if there is one."""
    lo = 18.0 if motif else 7.0  # with a motif, both shapes stay in the lower / right part
    if relation == "left of":
        y = rng.uniform(lo if motif else 8.0, 24.0, size=2)
        return (rng.uniform(7.0, 13.0), y[0]), (rng.uniform(19.0, 25.0), y[1])
    x = rng.uniform(lo if motif else 8.0, 24.0, size=2)
    return (x[0], rng.uniform(7.0, 13.0)), (x[1], rng.uniform(19.0, 25.0))


def scene_content(seed: int, shapes, colours) -> tuple:
    """The content a seed draws (background, two (shape, colour) pairs, relation), layout aside."""
    rng = np.random.default_rng([seed, 0])
    background = SCENE_BACKGROUNDS[rng.integers(3)]
    picks = []
    while len(picks) < 2:
        pair = (shapes[rng.integers(len(shapes))], colours[rng.integers(len(colours))])
        if pair not in picks and (not picks or pair[1] != picks[0][1]):  # two colours: "which is where" is drawable
            picks.append(pair)
    relation = ("left of", "above")[rng.integers(2)]
    return background, picks, relation


def make_scene(seed: int, shapes, colours, layout_seed: int | None = None, motif: int | None = None) -> Scene:
    """The scene of ``seed``; ``layout_seed`` redraws only positions and sizes (same content)."""
    background, picks, relation = scene_content(seed, shapes, colours)
    rng = np.random.default_rng([seed if layout_seed is None else layout_seed, 1])
    centres = _place(rng, relation, motif is not None)
    radii = rng.uniform(4.5, 6.5, size=2) if motif is not None else rng.uniform(5.5, 7.5, size=2)
    placed = [PlacedShape(s, c, float(x), float(y), float(r)) for (s, c), (x, y), r in zip(picks, centres, radii)]
    return Scene(background, placed[0], placed[1], relation, motif)


def motif_parts(motif: int, shapes, colours) -> list[tuple[str, str, float]]:
    """A motif: an outer shape with a smaller one inside, in two fixed colours (shape, colour, radius)."""
    rng = np.random.default_rng([4321, motif])
    outer = shapes[rng.integers(len(shapes))]
    inner = shapes[rng.integers(len(shapes))]
    c1, c2 = rng.choice(len(colours), size=2, replace=False)
    return [(outer, colours[c1], MOTIF_RADIUS), (inner, colours[c2], MOTIF_RADIUS * 0.5)]
