"""The report's image gallery: per table row, the first images of each prompt, aligned.

For each row one job is shown (the replicate with the seed every row has, so that the
same prompt *and* image seed sit in the same column across methods and epsilons); its
images come from ``images/index.jsonl``. Columns are (prompt index, image seed) pairs:
the first ``per_prompt`` images of each of the first ``max_prompts`` prompts.

Image sources (:class:`ImageLinker`): an image no larger than ``THUMB_PX`` is linked
where it lies, relative to the report; a larger one is thumbnailed once into
``<out>/report_assets/thumbs/`` (named by its path, size and mtime, so an unchanged image
reuses its thumbnail on the next render). When the images lie outside the report's
folder (``--out`` elsewhere), they are embedded as data URIs so the folder stays
self-contained.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from benchmark.report.runs import read_index
from benchmark.report.sweep import Job, Row
from benchmark.utils.io import atomic_write_bytes

INDEX_IDENTITY = ("file", "index", "prompt_index", "seed", "text", "original", "memorized")
THUMB_PX = 128  # shown at 64-96 px: twice that is enough on a high-DPI screen
ASSETS_DIR = "report_assets"


@dataclass
class Cell:
    src: str
    title: str
    path: Path  # the original image


@dataclass
class GalleryRow:
    row: Row
    job: Optional[Job]
    cells: dict = field(default_factory=dict)  # (prompt_index, seed) -> Cell


@dataclass
class Gallery:
    columns: list  # (prompt_index, seed, prompt text)
    rows: list[GalleryRow]
    warnings: list[str]


class ImageLinker:
    """The ``src`` of each image in the report: a relative path, a cached thumbnail or a data URI."""

    def __init__(self, out: Path, embed: bool):
        self.out = Path(out)
        self.embed = embed
        self.thumbs = self.out / ASSETS_DIR / "thumbs"
        self.made = self.reused = 0

    def _thumbnail(self, path: Path, stat: os.stat_result) -> Path:
        key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{THUMB_PX}".encode()).hexdigest()
        thumb = self.thumbs / f"{key[:20]}.png"
        if thumb.is_file():
            self.reused += 1
            return thumb
        from PIL import Image

        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            image.save(buf, format="PNG")
        self.thumbs.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(thumb, buf.getvalue())
        self.made += 1
        return thumb

    def src(self, path: Path) -> str:
        """Raises OSError / PIL errors for an unreadable image (the caller lists it)."""
        from PIL import Image

        stat = path.stat()
        with Image.open(path) as image:
            width, height = image.size
            image.verify()  # a truncated PNG would show as broken in the page
        target = self._thumbnail(path, stat) if max(width, height) > THUMB_PX else path
        if self.embed:
            return "data:image/png;base64," + base64.b64encode(target.read_bytes()).decode()
        return Path(os.path.relpath(target, self.out)).as_posix()


def _order(value) -> tuple:
    """Numbers before text, numbers numerically (seed 999 before seed 1000)."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _shown_job(row: Row, seed) -> Optional[Job]:
    with_images = [j for j in row.jobs if (j.run_dir / "images").is_dir()]
    same_seed = [j for j in with_images if str(j.seed) == str(seed)]
    return (same_seed or with_images or [None])[0]


def build_gallery(rows: Sequence[Row], linker: ImageLinker, per_prompt: int = 2,
                  max_prompts: int = 12) -> Gallery:
    """The gallery of ``rows`` (each row's shown job, its images keyed by prompt and seed)."""
    seeds = Counter(str(j.seed) for row in rows for j in row.jobs)
    common = min(seeds, key=lambda s: (-seeds[s], s)) if seeds else None
    warnings: list[str] = []
    gallery_rows, columns = [], {}
    for row in rows:
        job = _shown_job(row, common)
        entry = GalleryRow(row, job)
        gallery_rows.append(entry)
        if job is None:
            continue
        index, warning = read_index(job.run_dir)
        if warning:
            warnings.append(warning)
        taken: Counter = Counter()
        for item in index:
            prompt = item.get("prompt_index", 0)
            if taken[prompt] >= per_prompt:
                continue
            key = (prompt, item.get("seed"))
            if key not in columns and len({p for p, _ in columns} | {prompt}) > max_prompts:
                continue
            path = job.run_dir / "images" / item["file"]
            try:
                src = linker.src(path)
            except Exception as err:  # a corrupt image: listed, not shown
                warnings.append(f"{path}: unreadable image ({type(err).__name__})")
                continue
            taken[prompt] += 1
            text = str(item.get("text", ""))
            original = str(item.get("original", text))
            columns.setdefault(key, f"[memorized] {original}" if item.get("memorized") else original)
            # The guidance's per-image statistics (triggered, first_step_magnitude, ...) on hover.
            stats = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in item.items() if k not in INDEX_IDENTITY)
            title = f"{text} (prompt {prompt}, seed {item.get('seed')})" + (f"; {stats}" if stats else "")
            entry.cells[key] = Cell(src, title, path)
    ordered = sorted(columns, key=lambda k: (_order(k[0]), _order(k[1])))
    return Gallery([(p, s, columns[(p, s)]) for p, s in ordered], gallery_rows, warnings)
