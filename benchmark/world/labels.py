"""Ground-truth attributes named in a world prompt (what the judge should see)."""

from __future__ import annotations

from benchmark.world.generator import BACKGROUNDS, COLOURS, FILLS, SHAPES


def attributes_in_text(text: str) -> dict[str, str]:
    """The shape, colour, fill and background words a prompt names, by attribute."""
    words = text.replace(",", " ").split()
    found: dict[str, str] = {}
    for key, values in (("shape", SHAPES), ("colour", COLOURS), ("fill", FILLS)):
        hits = [w for w in words if w in values]
        if hits:
            found[key] = hits[0]
    for i, w in enumerate(words[:-1]):
        if w in BACKGROUNDS and words[i + 1] == "background":
            found["background"] = w
    return found
