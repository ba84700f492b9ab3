"""The official data layouts, built in their released formats and read without conversion."""

from __future__ import annotations

import pytest

from benchmark.config import validate_config
from benchmark.data.types import DatasetError
from benchmark.datasets import load_dataset
from tests.data.layouts import write_prss_release, write_single_imagefolder, write_wen
from tests.helpers import compose


def _load(*overrides: str, resolution: int = 32):
    return load_dataset(validate_config(compose(["logger=none", *overrides])).dataset, resolution)


def test_prss_release_reads_as_released(tmp_path):
    folder = write_prss_release(tmp_path, n=3, images_per_prompt=2)
    data = _load("dataset=sdv1_500_memorized", f"dataset.path={folder}")
    assert len(data.prompts) == 3 and all(p.memorized for p in data.prompts)
    assert [len(p.paraphrases) for p in data.prompts] == [25, 25, 25]
    assert data.prompts[0].paraphrases[0].endswith("variant 1") and data.prompts[0].paraphrases[-1].endswith("25")
    assert data.adapt.images.shape == (6, 3, 32, 32)
    # Each prompt's ground truth is its own gt_images/<index>/ folder, in file order.
    assert [data.adapt.files[i].parent.name for i in data.prompts[1].ground_truth] == ["13", "13"]


def test_prss_release_prompt_without_its_images_is_an_error_naming_the_line(tmp_path):
    folder = write_prss_release(tmp_path, n=2)
    for f in (folder / "gt_images" / "13").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"withss.jsonl:2: memorized prompt .* has no ground-truth images"):
        _load("dataset=sdv1_500_memorized", f"dataset.path={folder}")


def test_wen_layout_loads_without_images_or_paraphrases(tmp_path):
    data = _load("dataset=sdv1_500_memorized", f"dataset.path={write_wen(tmp_path / 'wen', n=4)}")
    assert len(data.prompts) == 4 and all(p.memorized and not p.paraphrases for p in data.prompts)
    assert len(data.adapt) == 0 and data.adapt.images.shape == (0, 3, 32, 32)


def test_wen_layout_reads_ground_truth_where_it_exists(tmp_path):
    data = _load("dataset=sdv1_500_memorized", f"dataset.path={write_wen(tmp_path / 'wen', 4, (1, 3))}")
    assert [bool(p.ground_truth) for p in data.prompts] == [False, True, False, True]
    assert len(data.adapt) == 2


def test_auto_prompt_file_missing_names_the_layouts(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"sdv1_500_mem_groundtruth_repeated_withss.jsonl.*sdv1_500_memorized"):
        _load("dataset=sdv1_500_memorized", f"dataset.path={tmp_path / 'empty'}")


SINGLE = ["dataset=artist_artworks", "dataset.adapt_split=."]


def test_single_imagefolder_without_split_says_how_to_hold_out(tmp_path):
    root = write_single_imagefolder(tmp_path / "art")
    with pytest.raises(DatasetError, match=r"dataset.heldout_split=random:0.2"):
        _load(*SINGLE, f"dataset.path={root}")


def test_single_imagefolder_seeded_heldout_split(tmp_path):
    root = write_single_imagefolder(tmp_path / "art", n=10)
    a = _load(*SINGLE, f"dataset.path={root}", "dataset.heldout_split=random:0.3")
    b = _load(*SINGLE, f"dataset.path={root}", "dataset.heldout_split=random:0.3", "seed=5")
    c = _load(*SINGLE, f"dataset.path={root}", "dataset.heldout_split=random:0.3:7")
    assert (len(a.adapt), len(a.heldout)) == (7, 3)
    assert not set(a.adapt.files) & set(a.heldout.files)  # disjoint
    assert a.heldout.files == b.heldout.files  # the split's own seed, not the run's
    assert a.heldout.files != c.heldout.files
    limited = _load(*SINGLE, f"dataset.path={root}", "dataset.heldout_split=random:0.3", "dataset.max_adapt_images=2")
    assert (len(limited.adapt), limited.heldout.files) == (2, a.heldout.files)


@pytest.mark.parametrize("spec", ["random:1.5", "random:x", "random:0.05"])
def test_bad_random_split_is_an_error_naming_the_key(tmp_path, spec):
    root = write_single_imagefolder(tmp_path / "art", n=10)
    with pytest.raises(DatasetError, match="heldout_split"):
        _load(*SINGLE, f"dataset.path={root}", f"dataset.heldout_split={spec}")
