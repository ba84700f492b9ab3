#!/usr/bin/env python
"""How a world's text encoder responds to an input row, by the row's norm (no training).

    python scripts/measure_text_encoder_scale.py WORLD_DIR [WORLD_DIR ...] [--out results/text_encoder_scale.md]

A textual-inversion row can carry a concept at the vocabulary's scale only if the
encoder's output responds to rows of that norm. For the prompt "a painting in the style
of circle", the last word's row is replaced by a random direction scaled to k times the
vocabulary's mean row norm, and the change of the encoder's output at that position is
reported relative to (a) swapping in another vocabulary word (the change a word makes)
and (b) the change at 32x (where the row dominates the residual stream). Also: the
mean norms of the token rows, the position rows and the residual stream after each layer.
Public weights only; nothing is learned.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import CLIPTextModel, CLIPTokenizer

from benchmark.utils.io import atomic_write_bytes

PROMPT = "a painting in the style of circle"
FACTORS = (1, 2, 4, 8, 32)


@torch.no_grad()
def measure(world: Path, directions: int = 16) -> dict:
    encoder = CLIPTextModel.from_pretrained(world / "text_encoder").float().eval()
    tokenizer = CLIPTokenizer.from_pretrained(world / "tokenizer")
    table = encoder.get_input_embeddings().weight
    ids = tokenizer([PROMPT], padding="max_length", max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids
    pos = int((ids[0] != tokenizer.eos_token_id).sum()) - 1  # the last word
    token = int(ids[0, pos])
    original = table[token].clone()

    def output_with(row: torch.Tensor) -> torch.Tensor:
        table[token] = row
        out = encoder(ids).last_hidden_state[0, pos]
        table[token] = original
        return out

    base = output_with(original)
    vocab = float(table.norm(dim=1).mean())
    swap = torch.stack([(output_with(table[t].clone()) - base).norm() for t in range(len(table)) if t != token])
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(directions, table.shape[1], generator=gen)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    change = {k: float(torch.stack([(output_with(k * vocab * d) - base).norm() for d in dirs]).mean())
              for k in FACTORS}
    hidden = encoder(ids, output_hidden_states=True).hidden_states
    return {"world": str(world), "vocabulary_mean_norm": vocab,
            "position_mean_norm": float(encoder.embeddings.position_embedding.weight.norm(dim=1).mean()),
            "residual_norm_by_layer": [float(h[0, :pos + 2].norm(dim=-1).mean()) for h in hidden],
            "swap_change": float(swap.mean()), "change_by_factor": change}


def markdown(results: list[dict], command: str) -> str:
    lines = ["# Text-encoder response to an input row, by its norm", "",
             f"Command: `{command}`. Prompt: \"{PROMPT}\"; the last word's row replaced by 16 random directions "
             "at k x the vocabulary's mean row norm; the output change at that position, relative to swapping in "
             "another vocabulary word and to k = 32. Public weights only.", "",
             "| world | vocab row norm | position row norm | residual norm: input, after each layer | "
             + " | ".join(f"{k}x / word swap" for k in FACTORS) + " | 2x / 32x |",
             "|---|---|---|---|" + "---|" * len(FACTORS) + "---|"]
    for r in results:
        c = r["change_by_factor"]
        lines.append(f"| `{r['world']}` | {r['vocabulary_mean_norm']:.3f} | {r['position_mean_norm']:.3f} | "
                     + ", ".join(f"{x:.2f}" for x in r["residual_norm_by_layer"]) + " | "
                     + " | ".join(f"{c[k] / r['swap_change']:.2f}" for k in FACTORS)
                     + f" | {c[2] / c[32]:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("worlds", nargs="+", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    command = "python scripts/measure_text_encoder_scale.py " + " ".join(map(str, args.worlds)) + (
        f" --out {args.out}" if args.out else "")
    text = markdown([measure(w) for w in args.worlds], command)
    print(text)
    if args.out:
        atomic_write_bytes(args.out, text.encode())


if __name__ == "__main__":
    main()
