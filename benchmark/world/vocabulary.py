"""The offline world's vocabulary: every word its captions, paraphrases and templates use
(the world tokenizer is built from it, so no prompt word is out of vocabulary)."""

from __future__ import annotations

import itertools

from benchmark.world import archive as A
from benchmark.world import generator as G
from benchmark.world import scenes as S


def vocabulary_words() -> list[str]:
    """Every word the world's captions, paraphrases and templates use."""
    words: set[str] = set()
    texts = [
        " ".join(G.SHAPES), " ".join(G.COLOURS), " ".join(G.BACKGROUNDS), " ".join(G.FILLS),
        " ".join(G.PUBLIC_PREFIXES), " ".join(A.PLACES), " ".join(S.MOTIF_NAMES),
        " ".join(itertools.chain(*A.ADJECTIVE_GROUPS)), " ".join(itertools.chain(*A.NOUN_GROUPS)),
        " ".join(A.TITLE_TEMPLATES), " ".join(G.STYLE_TEMPLATES).replace("{caption}", ""), " ".join(G.OBJECT_TEMPLATES),
        "a an the on of in background style photo picture left right above below with and crest emblem ,",
        " ".join(G.PUBLIC_STYLE_NAMES.values()),
    ]
    for t in texts:
        for w in t.replace("{}", " ").split():
            if not w.startswith("{"):
                words.add(w)
    return sorted(words)
