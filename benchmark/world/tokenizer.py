"""A small CLIP BPE tokenizer for the offline world.

The real CLIP vocabulary has 49k tokens, most of which the tiny text encoder would never
see. We train a BPE (with the ``tokenizers`` library, CLIP's ``</w>`` end-of-word
convention) on the world's own words until each becomes a single token; single letters
stay in the vocabulary so an unseen word still tokenizes, as with real CLIP.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_ALPHABET = list("abcdefghijklmnopqrstuvwxyz0123456789,.'")


def build_world_tokenizer(words: list[str], model_max_length: int) -> CLIPTokenizer:
    """Return a CLIPTokenizer in which every word of ``words`` is one token."""
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token=EOS))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=100_000,
        min_frequency=1,
        special_tokens=[BOS, EOS],
        initial_alphabet=_ALPHABET,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator([" ".join(words)] * 2, trainer=trainer)
    model = bpe.get_vocab()
    # Order ids: specials first, then alphabet, then merges, as CLIP's vocab file does.
    vocab = dict(sorted(model.items(), key=lambda kv: kv[1]))
    for ch in _ALPHABET:  # each letter also as a word end, so every word can tokenize
        vocab.setdefault(ch + "</w>", len(vocab))
    import json

    merges_raw = json.loads(bpe.to_str())["model"]["merges"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges_raw]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
    unsplit = [w for w in words if len(tokenizer.tokenize(w)) != 1]
    if unsplit:
        raise RuntimeError(f"world tokenizer split words into pieces: {unsplit[:10]}")
    return tokenizer
