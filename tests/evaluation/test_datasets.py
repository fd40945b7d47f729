"""Dataset lookup and layout detection on tiny synthetic folders (no shared data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srcli.errors import DataError
from srcli.evaluation.datasets import (
    DatasetError,
    ImagePair,
    detect_layout,
    find_dataset,
    load_benchmark_pairs,
    load_pair,
    open_dataset,
)
from srcli.imresize import bicubic_downscale


def save(path: Path, height: int, width: int, seed: int = 0, grey: bool = False) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width) if grey else (height, width, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def names(pairs: tuple[ImagePair, ...]) -> list[str]:
    return [pair.name for pair in pairs]


# ----------------------------------------------------------------------------- layouts


def test_folder_of_hr_images(tmp_path: Path) -> None:
    save(tmp_path / "b.png", 10, 12)
    save(tmp_path / "a.png", 10, 12)
    save(tmp_path / "sub" / "c.jpg", 10, 12)
    (tmp_path / "notes.txt").write_text("not an image")
    layout, pairs = detect_layout(tmp_path, 2)
    assert "bicubic" in layout
    assert names(pairs) == ["a", "b", "sub/c"] and all(pair.lr is None for pair in pairs)


def test_hr_and_lr_bicubic_scale_folders(tmp_path: Path) -> None:
    save(tmp_path / "HR" / "baby.png", 8, 12)
    save(tmp_path / "LR_bicubic" / "X2" / "babyx2.png", 4, 6)
    save(tmp_path / "LR_bicubic" / "X4" / "babyx4.png", 2, 3)
    layout, pairs = detect_layout(tmp_path, 4)
    assert layout == "HR/ + LR_bicubic/X4/"
    assert pairs == (ImagePair("baby", tmp_path / "HR" / "baby.png", tmp_path / "LR_bicubic" / "X4" / "babyx4.png"),)
    with pytest.raises(DatasetError, match=r"no X3/ folder .*found X2, X4"):
        detect_layout(tmp_path, 3)


def test_div2k_names_prefer_the_validation_split(tmp_path: Path) -> None:
    save(tmp_path / "DIV2K_train_HR" / "0001.png", 8, 8)
    save(tmp_path / "DIV2K_valid_HR" / "0801.png", 8, 8)
    save(tmp_path / "DIV2K_valid_LR_bicubic" / "X2" / "0801x2.png", 4, 4)
    layout, pairs = detect_layout(tmp_path, 2)
    assert layout == "DIV2K_valid_HR/ + DIV2K_valid_LR_bicubic/X2/"
    assert names(pairs) == ["0801"]


def test_hr_and_lr_folders(tmp_path: Path) -> None:
    for name in ("x", "y"):
        save(tmp_path / "hr" / f"{name}.png", 8, 8)
        save(tmp_path / "lr" / f"{name}.png", 2, 2)
    layout, pairs = detect_layout(tmp_path, 4)
    assert layout == "hr/ + lr/"
    assert names(pairs) == ["x", "y"] and pairs[0].lr == tmp_path / "lr" / "x.png"


def test_hr_folder_alone_means_bicubic_from_hr(tmp_path: Path) -> None:
    save(tmp_path / "HR" / "a.png", 8, 8)
    layout, pairs = detect_layout(tmp_path, 2)
    assert "bicubic" in layout and pairs == (ImagePair("a", tmp_path / "HR" / "a.png"),)


def test_suffix_pairs_in_one_folder(tmp_path: Path) -> None:
    save(tmp_path / "img_001_HR.png", 8, 8)
    save(tmp_path / "img_001_LR.png", 4, 4)
    save(tmp_path / "img_002_HR.png", 8, 8)
    save(tmp_path / "img_002_LR.png", 4, 4)
    layout, pairs = detect_layout(tmp_path, 2)
    assert layout == "*_HR + *_LR"
    assert names(pairs) == ["img_001", "img_002"] and pairs[1].lr == tmp_path / "img_002_LR.png"


# ----------------------------------------------------------------------------- errors


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no images .*expected a folder of HR images"):
        detect_layout(tmp_path, 2)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        detect_layout(tmp_path / "nope", 2)


def test_unpaired_names_are_a_clear_error(tmp_path: Path) -> None:
    save(tmp_path / "hr" / "a.png", 8, 8)
    save(tmp_path / "hr" / "b.png", 8, 8)
    save(tmp_path / "lr" / "a.png", 4, 4)
    save(tmp_path / "lr" / "c.png", 4, 4)
    with pytest.raises(DatasetError, match=r"do not pair up by name \(no LR for b; no HR for c\)"):
        detect_layout(tmp_path, 2)


def test_suffix_layout_with_missing_lr(tmp_path: Path) -> None:
    save(tmp_path / "a_HR.png", 8, 8)
    with pytest.raises(DatasetError, match="no LR for a"):
        detect_layout(tmp_path, 2)


def test_two_images_with_one_name_are_refused(tmp_path: Path) -> None:
    save(tmp_path / "hr" / "a.png", 8, 8)
    save(tmp_path / "hr" / "a.bmp", 8, 8)
    save(tmp_path / "lr" / "a.png", 4, 4)
    with pytest.raises(DatasetError, match="two HR images"):
        detect_layout(tmp_path, 2)


def test_pair_with_wrong_sizes_is_a_clear_error(tmp_path: Path) -> None:
    save(tmp_path / "hr" / "a.png", 10, 8)
    save(tmp_path / "lr" / "a.png", 4, 4)
    _, pairs = detect_layout(tmp_path, 2)
    with pytest.raises(DatasetError, match=r"LR 4x4 at x2 is 8x8, but HR a.png is 8x10"):
        load_pair(pairs[0], 2)


def test_dataset_errors_are_data_errors_for_the_cli() -> None:
    assert issubclass(DatasetError, DataError)


# ----------------------------------------------------------------------------- loading


def test_hr_only_pair_is_cropped_and_downscaled(tmp_path: Path) -> None:
    pixels = save(tmp_path / "a.png", 11, 14)
    lr, hr = load_pair(ImagePair("a", tmp_path / "a.png"), 4)
    expected_hr = torch.from_numpy(pixels[:8, :12]).permute(2, 0, 1).double() / 255
    assert hr.dtype == torch.float32 and torch.allclose(hr.double(), expected_hr)
    assert torch.allclose(lr.double(), bicubic_downscale(expected_hr, 4), atol=1e-7)


def test_paired_lr_is_read_as_given_and_hr_mod_cropped(tmp_path: Path) -> None:
    hr_pixels = save(tmp_path / "hr" / "a.png", 9, 10, seed=1)
    lr_pixels = save(tmp_path / "lr" / "a.png", 4, 5, seed=2)
    lr, hr = load_pair(ImagePair("a", tmp_path / "hr" / "a.png", tmp_path / "lr" / "a.png"), 2)
    assert torch.equal((lr * 255).round().to(torch.uint8), torch.from_numpy(lr_pixels).permute(2, 0, 1))
    assert torch.equal((hr * 255).round().to(torch.uint8), torch.from_numpy(hr_pixels[:8, :10]).permute(2, 0, 1))


def test_greyscale_is_replicated_to_rgb(tmp_path: Path) -> None:
    save(tmp_path / "g.png", 8, 8, grey=True)
    lr, hr = load_pair(ImagePair("g", tmp_path / "g.png"), 2)
    assert hr.shape == (3, 8, 8) and lr.shape == (3, 4, 4)
    assert torch.equal(hr[0], hr[1]) and torch.equal(hr[1], hr[2])


def test_load_benchmark_pairs_keeps_working(tmp_path: Path) -> None:
    save(tmp_path / "a.png", 13, 10)
    save(tmp_path / "b.png", 12, 12)
    pairs = load_benchmark_pairs(tmp_path, 3)
    assert [(tuple(lr.shape), tuple(hr.shape)) for lr, hr in pairs] == [((3, 4, 3), (3, 12, 9)),
                                                                          ((3, 4, 4), (3, 12, 12))]


# ----------------------------------------------------------------------------- lookup


def test_names_are_found_under_roots_and_benchmarks_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "data"
    save(root / "benchmarks" / "Set5" / "a.png", 8, 8)
    save(root / "BSD100" / "b.png", 8, 8)
    assert find_dataset("Set5", root) == root / "benchmarks" / "Set5"
    assert find_dataset("set5", root) == root / "benchmarks" / "Set5"
    assert find_dataset("B100", root) == root / "BSD100"
    dataset = open_dataset("b100", 2, root)
    assert dataset.name == "B100" and names(dataset.pairs) == ["b"]


def test_environment_and_cache_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SRCLI_DATA", raising=False)
    save(home / ".cache" / "srcli" / "datasets" / "Urban100" / "u.png", 8, 8)
    assert find_dataset("Urban100") == home / ".cache" / "srcli" / "datasets" / "Urban100"
    save(tmp_path / "env" / "Urban100" / "u.png", 8, 8)
    monkeypatch.setenv("SRCLI_DATA", str(tmp_path / "env"))
    assert find_dataset("Urban100") == tmp_path / "env" / "Urban100"
    assert find_dataset("Urban100", tmp_path / "nowhere") == tmp_path / "env" / "Urban100"


def test_a_folder_path_wins_and_is_named_after_the_folder(tmp_path: Path) -> None:
    save(tmp_path / "mine" / "a.png", 8, 8)
    dataset = open_dataset(tmp_path / "mine", 2)
    assert dataset.name == "mine" and dataset.root == tmp_path / "mine"


def test_missing_name_says_where_it_looked_and_what_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SRCLI_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetError) as caught:
        find_dataset("Manga109", tmp_path / "root")
    message = str(caught.value)
    assert "\n" not in message
    for expected in (str(tmp_path / "root"), str(tmp_path / "env"), str(tmp_path / "home"), "HR/ + LR_bicubic"):
        assert expected in message


def test_a_missing_benchmark_says_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from srcli.evaluation.datasets import find_dataset

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SRCLI_DATA", raising=False)
    with pytest.raises(DatasetError) as caught:
        find_dataset("set5")
    message = str(caught.value)
    assert "srcli downloads nothing" in message
    assert str(tmp_path / ".cache" / "srcli" / "datasets" / "Set5") in message
    assert "\n" not in message
