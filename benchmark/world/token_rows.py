"""The text encoder's rows of prompt words no pretraining caption uses: shrunk.

Ten words of the world's vocabulary occur only in prompts, templates and paraphrases
("style", "in", "picture", "right", ...). Their rows never get a gradient and keep their
random initialisation, which at the world's token scale (norm ~2,
``WorldScale.token_init_std``) is as loud as a trained word's row: "a red circle in the
style of" then carries two random words as strong as "red" (on the unshrunk v4 build the
base model drew the prompted shape in 17% of such prompts). In CLIP every word of a
prompt has been trained; the nearest the world can come without pretraining on those
words is to make them neutral, as they were in tinyworld-v3 (rows at transformers'
default initial scale): this step scales them by ``UNTRAINED_ROW_SCALE`` = 0.02 / 0.25.
The sub-word pieces of the BPE are left alone: no prompt of whole world words produces
them, and they keep the vocabulary's mean row norm (DPAgg-TI's default R) at the scale
of its rows.

It runs after the build's last stage, on the saved weights in their saved dtype, so
rebuilding gives the same bytes. It changes nothing the UNet was trained on: every
caption the UNet saw uses trained tokens only, and a caption's hidden states depend
only on the rows of its own tokens.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file
from transformers import CLIPTokenizer

from benchmark.world import generator as G

UNTRAINED_ROW_SCALE = 0.02 / 0.25
# Each file of a world that holds the text tower, and its token-embedding key.
TOKEN_TABLES = {"text_encoder/model.safetensors": "embeddings.token_embedding.weight",
                "clip/model.safetensors": "text_model.embeddings.token_embedding.weight"}


def pretraining_words(archive: list[G.ArchiveEntry]) -> set[str]:
    """Every word a pretraining caption can contain (``G.public_caption`` and the archive's captions)."""
    words = {w for prefix in G.PUBLIC_PREFIXES for w in prefix.split()}
    words |= {"a", "an", "on", "background", *G.SHAPES, *G.COLOURS, *G.FILLS, *G.BACKGROUNDS}
    for entry in archive:
        words |= set(entry.caption.split())
    return words


def untrained_word_ids(tokenizer: CLIPTokenizer, archive: list[G.ArchiveEntry]) -> list[int]:
    """Token ids of the vocabulary's words that no pretraining caption contains."""
    words = sorted(set(G.vocabulary_words()) - pretraining_words(archive))
    return sorted({i for w in words for i in tokenizer(w, add_special_tokens=False).input_ids})


def shrink_untrained_rows(out: Path, archive: list[G.ArchiveEntry]) -> int:
    """Scale those words' rows in every text tower of the world in ``out``; return how many rows."""
    out = Path(out)
    untrained = untrained_word_ids(CLIPTokenizer.from_pretrained(out / "tokenizer"), archive)
    for file, key in TOKEN_TABLES.items():
        tensors = load_file(out / file)
        table = tensors[key]
        table[untrained] = (table[untrained].float() * UNTRAINED_ROW_SCALE).to(table.dtype)
        save_file(tensors, out / file)
    return len(untrained)
