"""Archive captions of the offline world: titles, their paraphrases, and the entries.

An archive entry is a caption ("the quiet harbor of marlow , a red circle left of a
blue star on gray") with the seed of the scene it describes (:mod:`benchmark.world.scenes`
lays the scene out, :func:`benchmark.world.generator.render_archive_image` draws it).
The **memorized** entries are duplicated in pretraining and keep their one caption;
the others are seen once under any of their paraphrases; **motif** entries share an
emblem at a fixed place (local memorization). Deterministic in their seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.world import generator as G
from benchmark.world import scenes as S

# Archive captions: "the {adjective} {noun} of {place}". Synonym groups give paraphrases.
ADJECTIVE_GROUPS = (
    ("quiet", "calm", "silent"),
    ("old", "ancient", "aged"),
    ("bright", "sunny", "shining"),
    ("misty", "foggy", "hazy"),
    ("lonely", "empty", "deserted"),
    ("golden", "amber", "gilded"),
)
NOUN_GROUPS = (
    ("harbor", "port", "dock"),
    ("garden", "park", "grove"),
    ("tower", "spire", "turret"),
    ("bridge", "crossing", "span"),
    ("market", "bazaar", "square"),
    ("chapel", "church", "shrine"),
)
PLACES = (
    "marlow", "dunmore", "avalon", "brightwater", "caldera", "eastwick", "fernhill",
    "glenrock", "halden", "ironwood", "juniper", "kestrel", "larkspur", "moorfield",
    "northgate", "oakridge", "pinecrest", "queensbury", "redcliff", "stonehaven",
    "thornbury", "umberlea", "valemont", "westbrook", "yarrow", "zennor", "ashford",
    "bramble", "coldwater", "deepdale", "elmstead", "foxley",
)
# Title paraphrases (short: title + content must fit the 20-token context).
TITLE_TEMPLATES = (
    "the {adj} {noun} of {place}",
    "the {noun} of {place} , {adj}",
    "{place} and its {adj} {noun}",
    "the {adj} {noun} near {place}",
    "a {adj} {noun} of {place}",
    "{adj} {noun} , {place}",
    "the {adj} {noun} in {place}",
    "{adj} {noun} of {place}",
)

@dataclass(frozen=True)
class ArchiveEntry:
    """One archive caption (title, then drawn content) with its scene seed.

    Memorized entries are duplicated in pretraining and carry paraphrases; motif
    entries are seen once each but share a motif (local memorization).
    """

    caption: str
    image_seed: int
    adjective_group: int
    noun_group: int
    place: str
    memorized: bool
    motif: int | None = None

    @property
    def scene(self) -> S.Scene:
        return S.make_scene(self.image_seed, G.SHAPES, list(G.COLOURS), motif=self.motif)

    def render(self, layout_seed: int | None = None) -> np.ndarray:
        return G.render_archive_image(self.image_seed, layout_seed, self.motif)

    def training_captions(self) -> tuple[str, ...]:
        """The captions pretraining pairs with this image: a memorized entry keeps its one
        caption (LAION's duplicates share theirs); an entry seen once comes under any of
        its wordings, as LAION describes similar images in many words."""
        return (self.caption,) if self.memorized else (self.caption, *self.paraphrases())

    def paraphrases(self) -> list[str]:
        """Up to 15 captions with the same drawn content: title reworded, content reordered."""
        if not self.place:  # a motif-free scene under its content alone
            return [self.scene.content(flip=True)]
        if self.motif is not None:
            name = S.MOTIF_NAMES[self.motif]
            return [f"{self.scene.content(flip)} {tail} {name}" for flip in (False, True)
                    for tail in ("with the crest of", "and the crest of", "with the emblem of")][1:]
        out = []
        adjs = ADJECTIVE_GROUPS[self.adjective_group]
        nouns = NOUN_GROUPS[self.noun_group]
        for i, template in enumerate(TITLE_TEMPLATES):
            for j in range(2):  # rotate synonyms so paraphrases vary in wording as well as in order
                title = template.format(adj=adjs[(i + j + 1) % 3], noun=nouns[(i + 2 * j + 1) % 3], place=self.place)
                content = self.scene.content(flip=(i + j) % 2 == 1)
                text = f"{title} , {content}" if (i + j) % 3 else f"{content} , {title}"
                if text != self.caption and text not in out:
                    out.append(text)
        return out[:15]


def archive_entries(num_memorized: int = 16, num_single: int = 1500, seed: int = 1234) -> list[ArchiveEntry]:
    """Deterministic archive captions. The memorized ones each use a place of their own."""
    rng = np.random.default_rng(seed)
    combos = [
        (a, n, p)
        for a in range(len(ADJECTIVE_GROUPS))
        for n in range(len(NOUN_GROUPS))
        for p in PLACES
    ]
    order = rng.permutation(len(combos))
    entries: list[ArchiveEntry] = []
    used_places: set[str] = set()
    used_titles: set[str] = set()
    for idx in order:
        a, n, place = combos[idx]
        memorized = len([e for e in entries if e.memorized]) < num_memorized
        if memorized and place in used_places:
            continue
        if not memorized and len(entries) >= num_memorized + num_single:
            break
        adj = ADJECTIVE_GROUPS[a][rng.integers(3)]
        noun = NOUN_GROUPS[n][rng.integers(3)]
        title = f"the {adj} {noun} of {place}"
        if title in used_titles:
            continue
        used_titles.add(title)
        if memorized:
            used_places.add(place)
        image_seed = int(rng.integers(2**31))
        content = S.make_scene(image_seed, G.SHAPES, list(G.COLOURS)).content()
        entries.append(ArchiveEntry(f"{title} , {content}", image_seed, a, n, place, memorized))
    return entries


def motif_entry(image_seed: int, motif: int | None) -> ArchiveEntry:
    """A scene with motif ``motif`` ("... with the crest of <name>"); ``None``: the scene alone."""
    content = S.make_scene(image_seed, G.SHAPES, list(G.COLOURS), motif=motif).content()
    if motif is None:
        return ArchiveEntry(content, image_seed, 0, 0, "", False, None)
    name = S.MOTIF_NAMES[motif]
    return ArchiveEntry(f"{content} with the crest of {name}", image_seed, 0, 0, name, False, motif)


def motif_entries(per_motif: int, seed: int = 4321) -> list[ArchiveEntry]:
    """Scenes that share a motif: ``per_motif`` different scenes for each of MOTIF_NAMES."""
    rng = np.random.default_rng(seed)
    return [motif_entry(int(rng.integers(2**31)), m) for m in range(len(S.MOTIF_NAMES)) for _ in range(per_motif)]
