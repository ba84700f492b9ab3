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

The official releases are read as they are (``dataset.prompts_file: auto`` finds them):

- the PRSS release, ``sdv1_500_mem_groundtruth/``: ``sdv1_500_mem_groundtruth_repeated_withss.jsonl``
  (``caption``, ``index``, ``url``, ``caption1..caption25``) with ground truth in
  ``gt_images/<index>/*.png``; every prompt is memorized and must have its images;
- Wen et al.'s ``sdv1_500_memorized.jsonl`` (``caption``, ``index``, ``url``): no paraphrases
  (use ``guidance.paraphrases=nearest`` for PRSS) and ground truth optional: where
  ``gt_images/<index>/`` exists its images are read, and copy metrics cover only those prompts.

A row without an images column but with an ``index`` takes its images from ``gt_images/<index>/``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from benchmark.config import DatasetConfig
from benchmark.data.images import load_image, stack_nchw
from benchmark.data.types import DatasetError, DatasetParts, EvalPrompt, ImageSet

_NUMBERED_CAPTION = re.compile(r"^caption(\d+)$")

PRSS_RELEASE_FILE = "sdv1_500_mem_groundtruth_repeated_withss.jsonl"
WEN_FILE = "sdv1_500_memorized.jsonl"
GT_FOLDER = "gt_images"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# prompts_file: auto tries these in order; True: ground truth is optional in that layout.
AUTO_FILES = (("prompts.jsonl", False), (PRSS_RELEASE_FILE, False), (WEN_FILE, True))


def find_prompt_file(root: Path, prompts_file: str, name: str) -> tuple[Path, bool]:
    """The prompt file and whether its layout makes ground-truth images optional."""
    if prompts_file != "auto":
        file = root / prompts_file
        if not file.is_file():
            raise DatasetError(f"dataset '{name}': no prompt file {file} (dataset.prompts_file; "
                               f"'auto' finds {', '.join(f for f, _ in AUTO_FILES)})")
        return file, prompts_file == WEN_FILE
    for candidate, optional in AUTO_FILES:
        if (root / candidate).is_file():
            return root / candidate, optional
    raise DatasetError(f"dataset '{name}': {root} holds none of {', '.join(f for f, _ in AUTO_FILES)} "
                       "(dataset.prompts_file=auto)")


def image_names(row: dict, root: Path, images_column: str) -> list[str]:
    """A row's ground-truth files, relative to ``root``: its images column, else ``gt_images/<index>/``."""
    names = row.get(images_column, row.get("file_name"))
    if names is None and row.get("index") is not None:
        folder = root / GT_FOLDER / str(row["index"])
        names = sorted(f"{GT_FOLDER}/{row['index']}/{p.name}" for p in folder.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    return [names] if isinstance(names, str) else list(names or [])


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
    if not root.is_dir():
        raise DatasetError(f"dataset '{cfg.name}': folder does not exist: {root}")
    file, truth_optional = find_prompt_file(root, cfg.prompts_file, cfg.name)
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
        names = image_names(row, root, cfg.images_column)
        if memorized and not names and not truth_optional:
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
    if not images and not truth_optional:
        raise DatasetError(f"{file}: no prompt lists a ground-truth image")
    # Wen et al.'s file without gt_images/: an empty image set (nothing to adapt on or copy from).
    stacked = stack_nchw(images) if images else torch.zeros((0, 3, resolution, resolution), dtype=torch.uint8)
    adapt = ImageSet(stacked, [r["text"] for r in rows], files, rows, root)
    # No held-out split: FID/KID, if asked for, compare with the ground truth itself.
    return DatasetParts(adapt, adapt, prompts)
