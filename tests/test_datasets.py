"""Image collections: folders (labelled, flat, split), the bundled sample, CIFAR-10 offline."""

from __future__ import annotations

import json
import time
import urllib.error

import numpy as np
import pytest
from image_fixtures import (
    CIFAR_CLASSES,
    fake_cifar_archive,
    make_class_folder,
    patch_cifar_checksums,
    rgb,
    set_mtime,
    solid,
    truncated_jpeg,
    write_image,
)

from embeddings.errors import DatasetUnavailableError, InvalidInputError
from embeddings.image import cifar, folders
from embeddings.image.collection import ImageCollection, LazyFolderCollection
from embeddings.image.collections import default_source, list_splits, open_collection, source_fingerprint
from embeddings.image.sample import SAMPLE_PATH

DESCRIBE_KEYS = {"name", "source", "split", "count", "classes", "fingerprint"}


# ----------------------------------------------------------------------------- folders


def test_labelled_folder(tmp_path):
    root = make_class_folder(tmp_path / "pets", classes=("dog", "cat", "bird"), per_class=3)
    coll = open_collection(str(root))
    assert isinstance(coll, ImageCollection)
    assert (coll.name, coll.source, coll.split) == ("pets", str(root), "all")
    assert coll.classes == ["bird", "cat", "dog"]  # sorted sub-folder names
    assert len(coll) == 9 and coll.labels.dtype == np.int64
    np.testing.assert_array_equal(coll.labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert coll.names[:2] == ["bird/000.png", "bird/001.png"]
    images = coll.get_images([0, 4, 8])
    assert isinstance(images, np.ndarray) and images.shape == (3, 8, 8, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(coll.get_image(4), images[1])
    assert coll.label_name(8) == "dog"
    desc = coll.describe()
    assert set(desc) == DESCRIBE_KEYS and desc["count"] == 9 and desc["classes"] == coll.classes
    json.dumps(desc)
    assert list_splits(root) == ["all"]
    assert coll.skipped == 0 and coll.warnings == []


def test_flat_folder_is_unlabelled(tmp_path):
    for i in range(4):
        write_image(tmp_path / "flat" / f"img{i}.png", rgb(6, 6, seed=i))
    (tmp_path / "flat" / "notes.txt").write_text("not an image, ignored")
    (tmp_path / "flat" / ".hidden.png").write_bytes(b"ignored: hidden")
    coll = open_collection(tmp_path / "flat")
    assert coll.labels is None and coll.classes == [] and len(coll) == 4 and coll.split == "all"
    np.testing.assert_array_equal(coll.get_image(2), rgb(6, 6, seed=2))
    assert coll.label_name(0) is None


def test_train_test_folder_gives_two_splits(tmp_path):
    root = tmp_path / "cifarish"
    make_class_folder(root / "train", per_class=4)
    make_class_folder(root / "test", per_class=2, ext=".jpg")
    assert list_splits(root) == ["train", "test"]
    test = open_collection(root)  # defaults to test
    assert test.split == "test" and len(test) == 4 and test.name == "cifarish"
    train = open_collection(root, split="train")
    assert len(train) == 8 and train.classes == ["cat", "dog"]
    assert train.fingerprint() != test.fingerprint()
    with pytest.raises(InvalidInputError, match="valid splits: train, test"):
        open_collection(root, split="validation")


def test_corrupt_files_are_skipped_with_a_count(tmp_path, caplog):
    root = make_class_folder(tmp_path / "c", per_class=3, ext=".jpg")
    (root / "cat" / "zz_text.jpg").write_text("I am not a JPEG")
    (root / "dog" / "zz_cut.jpg").write_bytes(truncated_jpeg())
    (root / "dog" / "zz_empty.png").write_bytes(b"")
    coll = open_collection(root)
    assert len(coll) == 6 and coll.skipped == 3
    assert coll.warnings and "3 unreadable" in coll.warnings[0]
    assert "unreadable" in caplog.text
    assert all("zz_" not in n for n in coll.names)
    np.testing.assert_array_equal(coll.labels, [0, 0, 0, 1, 1, 1])


def test_mixed_sizes_give_a_list(tmp_path):
    write_image(tmp_path / "m" / "a.png", rgb(4, 5))
    write_image(tmp_path / "m" / "b.png", rgb(7, 3))
    coll = open_collection(tmp_path / "m")
    images = coll.get_images([1, 0])
    assert isinstance(images, list) and [im.shape for im in images] == [(7, 3, 3), (4, 5, 3)]


def test_layout_notes(tmp_path):
    root = make_class_folder(tmp_path / "n", per_class=2)
    write_image(root / "loose.png", rgb(8, 8))
    (root / "empty_class").mkdir()
    coll = open_collection(root)
    assert coll.classes == ["cat", "dog"] and len(coll) == 4
    assert any("outside class folders" in w for w in coll.warnings)
    assert any("empty_class" in w for w in coll.warnings)


def test_nested_files_in_class_folders(tmp_path):
    write_image(tmp_path / "r" / "cat" / "sub" / "a.png", rgb(4, 4))
    write_image(tmp_path / "r" / "dog" / "b.png", rgb(4, 4, 1))
    coll = open_collection(tmp_path / "r")
    assert coll.names == ["cat/sub/a.png", "dog/b.png"]


@pytest.mark.parametrize("bad", [[3], [-1], [0, 99], 1.5, [True], ["a"]])
def test_ids_out_of_range_or_wrong_type(tmp_path, bad):
    coll = open_collection(make_class_folder(tmp_path / "i", per_class=1))
    with pytest.raises(InvalidInputError):
        coll.get_images(bad)


def test_get_image_checks(tmp_path):
    coll = open_collection(make_class_folder(tmp_path / "g", per_class=1))
    with pytest.raises(InvalidInputError, match="out of range"):
        coll.get_image(2)
    with pytest.raises(InvalidInputError):
        coll.get_image(True)
    assert coll.get_images([]).shape[0] == 0
    assert coll.get_image(np.int64(1)).shape == (8, 8, 3)


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    root = make_class_folder(tmp_path / "f", per_class=2)
    first = open_collection(root).fingerprint()
    assert open_collection(root).fingerprint() == first == source_fingerprint(root)
    target = root / "cat" / "000.png"
    stat = target.stat()
    write_image(target, solid((1, 2, 3), 8, 8))
    set_mtime(target, stat.st_mtime_ns + 1_000_000_000)
    changed = open_collection(root)
    assert changed.fingerprint() != first
    assert source_fingerprint(root) == changed.fingerprint()
    write_image(root / "dog" / "new.png", rgb(8, 8))
    assert source_fingerprint(root) != changed.fingerprint()


def test_fingerprint_follows_contents_not_modification_times(tmp_path, pixel_embedder, data_dir):
    """Re-copying a folder (new mtimes, same bytes) keeps its index; a same-size edit does not."""
    import shutil

    from embeddings.index.service import get_or_build_index

    root = make_class_folder(tmp_path / "f", per_class=2)
    index, status = get_or_build_index(open_collection(root), pixel_embedder, data_dir)
    assert status.action == "built"
    first = index.manifest["key"]["collection"]["fingerprint"]
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    shutil.rmtree(root)
    shutil.copytree(backup, root, copy_function=shutil.copyfile)  # new files, new mtimes
    for path in root.rglob("*.png"):
        set_mtime(path, path.stat().st_mtime_ns + 5_000_000_000)
    assert source_fingerprint(root) == first
    assert get_or_build_index(open_collection(root), pixel_embedder, data_dir)[1].action == "loaded"
    target = root / "cat" / "000.png"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF  # same size, one byte different (inside the PNG's final chunk CRC)
    target.write_bytes(bytes(data))
    assert source_fingerprint(root) != first


def test_a_copy_with_the_same_stats_but_other_bytes_is_hashed_on_its_own(tmp_path):
    import shutil

    a = make_class_folder(tmp_path / "a", per_class=2)
    b = tmp_path / "b"
    shutil.copytree(a, b)  # copy2: same names, sizes and mtimes
    target = b / "dog" / "001.png"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF
    target.write_bytes(bytes(data))
    set_mtime(target, stat.st_mtime_ns)  # stats identical to a's file, bytes not
    assert source_fingerprint(a) != source_fingerprint(b)


def test_fingerprint_does_not_depend_on_the_folder_location(tmp_path):
    a = make_class_folder(tmp_path / "a", per_class=2)
    fp = open_collection(a).fingerprint()
    moved = tmp_path / "elsewhere" / "a"
    moved.parent.mkdir()
    a.rename(moved)
    assert open_collection(moved).fingerprint() == fp


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="neither a folder nor one of sample, cifar10"):
        open_collection(tmp_path / "nope")
    with pytest.raises(DatasetUnavailableError):
        open_collection("imagenet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailableError, match="no image files"):
        open_collection(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("nope")
    with pytest.raises(DatasetUnavailableError, match="could be read"):
        open_collection(tmp_path / "bad")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DatasetUnavailableError, match="not a folder"):
        open_collection(tmp_path / "file.png")


def test_large_folder_is_read_lazily(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "EAGER_MAX_BYTES", 100)  # anything above 100 bytes is "large"
    root = make_class_folder(tmp_path / "big", per_class=3, size=16, ext=".jpg")
    (root / "cat" / "zz_cut.jpg").write_bytes(truncated_jpeg())  # header fine, data truncated
    (root / "dog" / "zz_text.jpg").write_text("not an image")  # header check fails: skipped up front
    coll = open_collection(root)
    assert isinstance(coll, LazyFolderCollection)
    assert len(coll) == 7 and coll.skipped == 1
    images = coll.get_images([0, 6])
    assert isinstance(images, list) and images[0].shape == (16, 16, 3)
    again = coll.get_image(0)
    np.testing.assert_array_equal(again, images[0])
    cut = coll.names.index("cat/zz_cut.jpg")
    placeholder = coll.get_image(cut)  # decoding fails now: a grey placeholder, recorded
    assert placeholder.shape == (64, 64, 3) and (placeholder == 128).all()
    assert coll.failed_ids == {cut}
    with pytest.raises(InvalidInputError):
        coll.get_image(len(coll))


# ----------------------------------------------------------------------------- sample


def test_sample_collection():
    coll = open_collection("sample")
    assert (coll.name, coll.source, coll.split) == ("sample", "sample", "test")
    assert len(coll) == 2000 and coll.classes == CIFAR_CLASSES
    assert coll.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(coll.labels), [200] * 10)
    images = coll.get_images(np.arange(0, 2000, 199))
    assert images.shape == (11, 32, 32, 3) and images.dtype == np.uint8
    assert images.std() > 10  # real pictures, not blanks
    assert list_splits("sample") == ["test"]
    assert coll.fingerprint() == open_collection("sample").fingerprint() == source_fingerprint("sample")
    assert set(coll.describe()) == DESCRIBE_KEYS
    with pytest.raises(InvalidInputError, match="split"):
        open_collection("sample", split="train")
    with pytest.raises(InvalidInputError, match="out of range"):
        coll.get_images([2000])


def test_sample_file_is_compact_and_has_no_pickles():
    assert SAMPLE_PATH.stat().st_size < 3 * 2**20
    with np.load(SAMPLE_PATH, allow_pickle=False) as npz:
        for key in npz.files:
            assert npz[key].dtype != object, key


# ----------------------------------------------------------------------------- CIFAR-10


def _offline(monkeypatch):
    from embeddings.core import downloads

    calls = []

    def fail(url, dest, expected=None, timeout=None):
        calls.append(url)
        raise urllib.error.URLError(OSError("Name or service not known"))

    monkeypatch.setattr(downloads, "download_file", fail)
    return calls


def test_cifar10_offline_fails_fast_with_a_hint(tmp_path, monkeypatch):
    calls = _offline(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="--data sample") as info:
        open_collection("cifar10", data_dir=tmp_path)
    assert time.perf_counter() - start < 2 and len(calls) == 1
    assert "could not be downloaded" in str(info.value)
    with pytest.raises(DatasetUnavailableError, match="downloads are disabled"):
        open_collection("cifar10", data_dir=tmp_path, download=False)
    assert len(calls) == 1
    assert default_source(tmp_path) == "sample"
    assert list_splits("cifar10") == ["train", "test"]


def test_cifar10_download_extract_load_and_cache(tmp_path, monkeypatch):
    archive, sums = fake_cifar_archive(tmp_path / "server")
    patch_cifar_checksums(monkeypatch, sums, archive)
    data = tmp_path / "data"
    assert default_source(data) == "sample"

    test = open_collection("cifar10", data_dir=data)  # "downloads" the archive via file://
    assert (test.name, test.split, len(test)) == ("cifar10", "test", 6)
    assert test.classes == CIFAR_CLASSES and test.labels.dtype == np.int64
    assert test.get_images([0, 5]).shape == (2, 32, 32, 3)
    assert (data / "cifar10" / "cifar-10-python.tar.gz").is_file()
    assert (data / "cifar10" / "cache" / "test_images.npy").is_file()
    train = open_collection("cifar10", split="train", data_dir=data)
    assert len(train) == 20
    assert default_source(data) == "cifar10"
    assert train.fingerprint() != test.fingerprint() == source_fingerprint("cifar10", "test")

    # later opens read the .npy cache: no torchvision, no pickle
    import torchvision.datasets

    def boom(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", boom)
    again = open_collection("cifar10", data_dir=data)
    np.testing.assert_array_equal(again.get_images(np.arange(6)), test.get_images(np.arange(6)))
    np.testing.assert_array_equal(again.labels, test.labels)


def test_cifar10_bad_checksum_is_refused(tmp_path, monkeypatch):
    archive, sums = fake_cifar_archive(tmp_path / "server")
    patch_cifar_checksums(monkeypatch, sums, archive)
    monkeypatch.setattr(cifar, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(DatasetUnavailableError, match="checksum mismatch"):
        open_collection("cifar10", data_dir=tmp_path / "data")
    leftovers = list((tmp_path / "data" / "cifar10").iterdir())
    assert leftovers == []  # no half-written archive


def test_cifar10_corrupt_batch_is_refused_before_unpickling(tmp_path, monkeypatch):
    archive, sums = fake_cifar_archive(tmp_path / "server")
    patch_cifar_checksums(monkeypatch, sums, archive)
    data = tmp_path / "data"
    open_collection("cifar10", data_dir=data)
    for p in (data / "cifar10" / "cache").iterdir():
        p.unlink()
    (data / "cifar10" / "cifar-10-batches-py" / "test_batch").write_bytes(b"tampered")
    with pytest.raises(DatasetUnavailableError, match="missing or corrupt"):
        open_collection("cifar10", data_dir=data, download=False)
