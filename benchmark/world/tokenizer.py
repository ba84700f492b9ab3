"""A small CLIP BPE tokenizer for the offline world.

The real CLIP vocabulary has 49k tokens, most of which the tiny text encoder would never
see. We learn BPE merges on the world's own words (CLIP's ``</w>`` end-of-word
convention) until each word is a single token; single letters stay in the vocabulary so
an unseen word still tokenizes, as with real CLIP. The merges are learned here rather
than with ``tokenizers``' BpeTrainer because that trainer breaks ties between equally
frequent pairs in an unspecified order, which made two builds of the world differ.
"""

from __future__ import annotations

from collections import Counter

from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_ALPHABET = list("abcdefghijklmnopqrstuvwxyz0123456789,.'")


def learn_bpe_merges(words: list[str]) -> list[tuple[str, str]]:
    """Merge the most frequent adjacent pair (ties: the smallest pair) until words are whole."""
    corpus = [tuple(w[:-1]) + (w[-1] + "</w>",) for w in sorted(set(words))]
    merges = []
    while True:
        pairs = Counter(p for symbols in corpus for p in zip(symbols, symbols[1:]))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = []
        for symbols in corpus:
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged.append(tuple(out))
        corpus = merged


def build_world_tokenizer(words: list[str], model_max_length: int) -> CLIPTokenizer:
    """Return a CLIPTokenizer in which every word of ``words`` is one token."""
    merges = learn_bpe_merges(words)
    vocab: dict[str, int] = {}
    for token in [BOS, EOS, *_ALPHABET, *(c + "</w>" for c in _ALPHABET), *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
    unsplit = [w for w in words if len(tokenizer.tokenize(w)) != 1]
    if unsplit:
        raise RuntimeError(f"world tokenizer split words into pieces: {unsplit[:10]}")
    return tokenizer
