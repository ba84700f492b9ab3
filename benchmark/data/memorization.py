"""Memorization datasets: prompts with their ground-truth training images and paraphrases.

Layout (one folder, ``dataset.path``)::

    my_memorized/
      prompts.jsonl      one prompt per line (``dataset.prompts_file``)
      gt/0000_0.jpg ...  ground-truth training images, paths relative to the folder

    {"caption": "...", "images": ["gt/0000_0.jpg"], "memorized": true,
     "paraphrases": ["...", "..."]}
    {"caption": "...", "caption1": "...", "caption2": "...", "images": [...]}  # PRSS release columns
    {"caption": "...", "memorized": false}                                   # a control prompt

The caption key is ``dataset.caption_column``; the images key ``dataset.images_column``
(a list or a single file name; ``file_name`` is accepted too). Paraphrases are either a
``paraphrases`` list or the official PRSS release's ``caption1 ... captionK`` columns.
A memorized prompt must list at least one existing image; a control prompt may omit them
(its generations then count for CLIP score and detection, not for copy similarity).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from benchmark.config import DatasetConfig
from benchmark.data.images import load_image, stack_nchw
from benchmark.data.types import DatasetError, DatasetParts, EvalPrompt, ImageSet

_NUMBERED_CAPTION = re.compile(r"^caption(\d+)$")


def paraphrases_of(row: dict, where: str = "") -> list[str]:
    """A row's paraphrases: its ``paraphrases`` list, else its ``caption1..captionK`` columns in order."""
    listed = row.get("paraphrases")
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise DatasetError(f"{where}'paraphrases' must be a list of strings")
        return [p for p in listed if p.strip()]
    numbered = sorted((int(m.group(1)), k) for k in row if (m := _NUMBERED_CAPTION.match(k)))
    return [row[k] for _, k in numbered if isinstance(row[k], str) and row[k].strip()]


def load_memorization_source(cfg: DatasetConfig, resolution: int) -> DatasetParts:
    """``source: memorization``: read ``<path>/<prompts_file>``; every image of every prompt
    becomes one adaptation image, and the held-out split is the adaptation split itself."""
    if not cfg.path:
        raise DatasetError(f"dataset '{cfg.name}': source 'memorization' needs 'path' (the folder of "
                           f"{cfg.prompts_file})")
    root = Path(os.path.expanduser(cfg.path))
    file = root / cfg.prompts_file
    if not root.is_dir():
        raise DatasetError(f"dataset '{cfg.name}': folder does not exist: {root}")
    if not file.is_file():
        raise DatasetError(f"dataset '{cfg.name}': no prompt file {file} (dataset.prompts_file)")
    prompts, images, files, rows = [], [], [], []
    for lineno, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file}:{lineno}: "
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{where}not valid JSON ({err.msg})") from None
        caption = row.get(cfg.caption_column)
        if not isinstance(caption, str) or not caption.strip():
            raise DatasetError(f"{where}missing caption column '{cfg.caption_column}'")
        memorized = row.get("memorized", True)
        if not isinstance(memorized, bool):
            raise DatasetError(f"{where}'memorized' must be true or false, got {memorized!r}")
        names = row.get(cfg.images_column, row.get("file_name", []))
        names = [names] if isinstance(names, str) else list(names)
        if memorized and not names:
            raise DatasetError(f"{where}memorized prompt {caption!r} has no ground-truth images "
                               f"(column '{cfg.images_column}')")
        truth = []
        for name in names:
            path = root / name
            if not path.is_file():
                raise DatasetError(f"{where}ground-truth image of {caption!r} does not exist: {path}")
            truth.append(len(images))
            images.append(load_image(path, resolution))
            files.append(path)
            rows.append({"text": caption, "prompt": len(prompts), "file_name": name})
        prompts.append(EvalPrompt(caption, ground_truth=truth, memorized=memorized,
                                  paraphrases=paraphrases_of(row, where)))
    if not prompts:
        raise DatasetError(f"{file} lists no prompts: the dataset is empty")
    if not images:
        raise DatasetError(f"{file}: no prompt lists a ground-truth image")
    adapt = ImageSet(stack_nchw(images), [r["text"] for r in rows], files, rows, root)
    # No held-out split: FID/KID, if asked for, compare with the ground truth itself.
    return DatasetParts(adapt, adapt, prompts)
