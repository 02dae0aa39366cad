"""The decoded-images cache: one mapped file per split, exact pixels, never stale, rebuilt when not trusted."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from archbench.data import decoded
from archbench.data.decoded import decoded_images
from archbench.data.decoded_file import FORMAT_VERSION
from archbench.data.segfolder import open_split, read_classes
from archbench.data.transforms import load_rgb

from helpers import make_segfolder


def write_images(folder: Path, seed: int = 0, n: int = 4) -> list[str]:
    """``n`` small uncompressed PNGs of different sizes and modes (RGB, grey, palette, RGBA) and a JPEG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = 9 + 3 * i, 7 + i
        mode = ("RGB", "L", "P", "RGBA")[i % 4]
        shape = {"RGB": (h, w, 3), "RGBA": (h, w, 4)}.get(mode, (h, w))
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
        paths.append(str(folder / f"{i}.png"))
        image.save(paths[-1], compress_level=0)  # the same size for any pixels of one shape and mode
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / "j.jpg")
    return [*paths, str(folder / "j.jpg")]


def sizes(paths: list[str]) -> list[tuple[int, int]]:
    return [Image.open(p).size for p in paths]


def opened(paths: list[str], folder: Path) -> decoded.DecodedImages:
    return decoded_images(paths, sizes(paths), folder=folder)


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.rgb"))


def test_kept_pixels_are_load_rgb_bit_for_bit_and_jpeg_is_not_kept(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img")
    images = opened(paths, tmp_path / "cache")
    assert images.source is not None and cache_files(tmp_path / "cache") == [images.source]
    assert images.pixels[-1] is None  # the JPEG
    for i, path in enumerate(paths[:-1]):
        pixels = images.pixels[i]
        assert pixels is not None and not pixels.flags.writeable
        assert np.array_equal(pixels, np.asarray(load_rgb(path))) and pixels.dtype == np.uint8
        assert np.array_equal(np.asarray(images.image(i, path)), np.asarray(load_rgb(path)))


def test_no_folder_or_over_the_budget_reads_files(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img")
    assert decoded_images(paths, sizes(paths)).pixels == [None] * len(paths)
    assert decoded_images(paths, sizes(paths), budget=0, folder=tmp_path / "c").pixels == [None] * len(paths)
    assert not (tmp_path / "c").exists()


def test_a_same_size_rewrite_with_the_mtime_restored_is_served_fresh(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img")
    first = opened(paths, tmp_path / "cache")
    before = os.stat(paths[0])
    fresh = np.asarray(Image.open(paths[0])).copy()
    fresh[0, 0] = 255 - fresh[0, 0]
    Image.fromarray(fresh).save(paths[0], compress_level=0)
    os.utime(paths[0], ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p, rsync -t or tar leave it
    after = os.stat(paths[0])
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second = opened(paths, tmp_path / "cache")  # while the first is still alive in this process
    assert second is not first and second.pixels[0] is not None
    assert np.array_equal(second.pixels[0], fresh) and not np.array_equal(first.pixels[0], fresh)
    assert cache_files(tmp_path / "cache") == [second.source]  # the split's file, written again


@pytest.mark.parametrize("damage", ["truncated", "other version"])
def test_an_untrusted_cache_file_is_rebuilt(tmp_path: Path, damage: str) -> None:
    paths = write_images(tmp_path / "img")
    expected = [None if p is None else p.copy() for p in opened(paths, tmp_path / "cache").pixels]
    (file,) = cache_files(tmp_path / "cache")
    size = file.stat().st_size
    if damage == "truncated":
        os.truncate(file, size - 5)
    else:
        with open(file, "r+b") as f:
            f.seek(8)
            f.write((FORMAT_VERSION + 1).to_bytes(4, "little"))
    decoded._KEPT.clear()  # a new process: nothing mapped yet
    again = opened(paths, tmp_path / "cache")
    assert file.stat().st_size == size and file.read_bytes()[8:12] == FORMAT_VERSION.to_bytes(4, "little")
    assert all(
        (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        for a, b in zip(again.pixels, expected)
    )


def _open_in_child(paths: list[str], folder: str, barrier: Any) -> tuple[int, int, int, bytes]:
    """(inode, mtime ns) of the decoded file right after this process opened the split, its pixel count, its key."""
    barrier.wait()
    images = decoded_images(paths, sizes(paths), folder=Path(folder))
    assert images.source is not None
    stat = images.source.stat()
    return stat.st_ino, stat.st_mtime_ns, sum(p.size for p in images.pixels if p is not None), images.key


def test_two_spawned_processes_share_one_file_written_once(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", n=12)
    folder = tmp_path / "cache"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        barrier = manager.Barrier(2)
        results = pool.starmap(_open_in_child, [(paths, str(folder), barrier)] * 2)
    (file,) = cache_files(folder)
    stat = file.stat()
    assert results[0] == results[1] == (stat.st_ino, stat.st_mtime_ns, results[0][2], decoded.split_key(paths))
    assert results[0][2] == sum(w * h * 3 for w, h in sizes(paths[:-1]))


def test_an_unwritable_folder_falls_back_to_the_files(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img")
    (tmp_path / "blocked").write_text("a file where the folder should be")
    with pytest.warns(UserWarning, match="decoded from its file"):
        images = opened(paths, tmp_path / "blocked" / "cache")
    assert images.pixels == [None] * len(paths) and images.source is None


def test_pickled_images_map_the_file_again(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img")
    images = opened(paths, tmp_path / "cache")
    data = pickle.dumps(images)
    assert len(data) < 1000  # the file's name and key, not its pixels
    copy = pickle.loads(data)
    assert copy.source == images.source and all(
        (a is None and b is None) or np.array_equal(a, b) for a, b in zip(copy.pixels, images.pixels)
    )
    images.source.unlink()
    assert pickle.loads(data).pixels == [None] * len(paths)  # the file is gone: read from the files


def test_the_cache_folder_stays_under_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoded, "CACHE_CAP_BYTES", 1)
    first = opened(write_images(tmp_path / "a", seed=1), tmp_path / "cache")
    second = opened(write_images(tmp_path / "b", seed=2), tmp_path / "cache")
    assert cache_files(tmp_path / "cache") == [second.source] and first.pixels[0] is not None  # still mapped
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [second.source.name, second.source.with_suffix(".lock").name]
    )


def test_masks_are_kept_in_process_memory_only_within_a_share_of_the_available_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_segfolder(tmp_path / "d", size=(40, 24))
    classes = read_classes(root)
    kept = open_split(root, "val", classes, resolution=32, train=False)
    assert kept._labels.func.__name__ == "_kept_at"  # type: ignore[attr-defined]
    monkeypatch.setattr(decoded, "available_memory", lambda: 40 * 24 * 3)  # a quarter of it: under 1 mask
    tight = open_split(root, "val", classes, resolution=32, train=False)
    assert tight._labels.func.__name__ == "_decoded_at"  # type: ignore[attr-defined]
    assert all(np.array_equal(kept.label_map(i), tight.label_map(i)) for i in range(len(kept)))
