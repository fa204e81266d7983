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


def test_the_sample_decodes_only_the_images_asked_for(monkeypatch, tmp_path):
    from embeddings.errors import DatasetUnavailableError
    from embeddings.image import sample

    decoded = []
    real = sample.decode_image_bytes
    monkeypatch.setattr(
        sample, "decode_image_bytes", lambda data, **kw: decoded.append(kw["name"]) or real(data, **kw)
    )
    coll = open_collection("sample")
    assert decoded == []  # opening it (the Home page, the index check) decodes nothing
    everything, labels, classes, names = sample.load_sample_arrays()
    np.testing.assert_array_equal(coll.get_images([5, 7, 5]), everything[[5, 7, 5]])
    assert decoded == ["sample image 5", "sample image 7"]  # each image decoded once, then kept
    np.testing.assert_array_equal(coll.get_images(np.arange(2000)), everything)
    assert (coll.names, coll.classes) == (names, classes) and coll.image_nbytes(0) == 32 * 32 * 3

    with np.load(sample.SAMPLE_PATH, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    blob = arrays["jpeg_bytes"].copy()
    start, end = arrays["jpeg_offsets"][3:5]
    blob[start:end] = 0  # image 3's bytes zeroed
    damaged = tmp_path / "damaged.npz"
    np.savez(damaged, **{**arrays, "jpeg_bytes": blob})
    monkeypatch.setattr(sample, "SAMPLE_PATH", damaged)
    coll = sample.open_sample("sample")
    assert coll.get_image(2).shape == (32, 32, 3)
    with pytest.raises(DatasetUnavailableError, match="damaged"):
        coll.get_image(3)


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


# ----------------------------------------------------------------------------- folders: what is read


def _in_thread(fn, timeout: float = 120.0):
    """Run ``fn`` in a daemon thread; a call that hangs (a FIFO read) fails the test instead of the suite."""
    import threading

    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn} did not return within {timeout:.0f} s (blocked on a special file?)"
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.mark.parametrize("layout", ["classes", "flat"])
def test_fifos_and_device_links_are_skipped_not_read(tmp_path, layout, pixel_embedder, data_dir, caplog):
    import os

    from embeddings.index.store import build_index

    root = tmp_path / "pets"
    folder = (
        make_class_folder(root, classes=("cat", "dog"), per_class=2) / "cat" if layout == "classes" else root
    )
    if layout == "flat":
        for i in range(3):
            write_image(root / f"{i}.png", rgb(8, 8, i))
    os.mkfifo(folder / "x.jpg")
    (folder / "y.png").symlink_to(folder / "x.jpg")  # a link inside, to the FIFO
    (folder / "z.png").symlink_to("/dev/zero")  # a device (and outside the folder)
    expected = 4 if layout == "classes" else 3
    caplog.set_level("WARNING")
    coll = _in_thread(lambda: open_collection(str(root)))
    assert len(coll) == expected and coll.skipped == 0
    assert not any(n.endswith(("x.jpg", "y.png", "z.png")) for n in coll.names)
    assert any("2 file(s) that are not regular files" in w for w in coll.warnings), coll.warnings
    assert any("1 link(s) leading outside" in w for w in coll.warnings), coll.warnings
    assert "not regular files" in caplog.text
    assert _in_thread(lambda: source_fingerprint(str(root))) == coll.fingerprint()
    index = _in_thread(lambda: build_index(coll, pixel_embedder, data_dir))
    assert index.count == expected


def test_a_file_that_becomes_a_fifo_is_refused_at_once(tmp_path):
    import os

    from embeddings.image.io import load_image_file, probe_size

    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    for name in ("pipe.png", "zero.png"):
        with pytest.raises(InvalidInputError, match="cannot read"):
            _in_thread(lambda n=name: load_image_file(tmp_path / n))
        assert _in_thread(lambda n=name: probe_size(str(tmp_path / n))) is None
        assert _in_thread(lambda n=name: folders._read_bytes(str(tmp_path / n))) is None
        with pytest.raises(OSError):
            _in_thread(lambda n=name: folders.sha256_file(str(tmp_path / n)))


def test_links_leading_outside_the_folder_are_not_followed(tmp_path, caplog):
    outside = make_class_folder(tmp_path / "elsewhere", classes=("fish",), per_class=2)
    write_image(tmp_path / "secret.png", rgb(8, 8, 9))
    root = make_class_folder(tmp_path / "pets", classes=("cat", "dog"), per_class=2)
    (root / "cat" / "secret.png").symlink_to(tmp_path / "secret.png")  # a file outside
    (root / "fish").symlink_to(outside / "fish")  # a class folder outside (top level)
    (root / "dog" / "deeper").symlink_to(outside / "fish")  # a folder outside, deeper down
    (root / "cat" / "alias.png").symlink_to(root / "dog" / "000.png")  # a file inside: used
    (root / "dog" / "more").symlink_to(root / "cat")  # a folder inside: used
    (root / "cat" / "loop").symlink_to(root / "cat")  # back to itself: not walked forever
    caplog.set_level("WARNING")
    coll = open_collection(str(root))
    assert coll.classes == ["cat", "dog"]
    assert coll.names == [
        "cat/000.png",
        "cat/001.png",
        "cat/alias.png",
        "dog/000.png",
        "dog/001.png",
        "dog/more/000.png",
        "dog/more/001.png",
        "dog/more/alias.png",
    ]
    # secret.png (seen twice: in cat/ and through dog/more/), fish/ and dog/deeper/
    assert any("4 link(s) leading outside the collection folder" in w for w in coll.warnings), coll.warnings
    np.testing.assert_array_equal(coll.get_image(2), coll.get_image(3))  # alias.png is dog/000.png
    # a split folder that is a link outside is not a split
    split_root = tmp_path / "splits"
    make_class_folder(split_root / "test", classes=("a",), per_class=1)
    make_class_folder(tmp_path / "other-train", classes=("a",), per_class=1)
    (split_root / "train").symlink_to(tmp_path / "other-train")
    assert list_splits(str(split_root)) == ["test"]
    # the flat layout too
    flat = tmp_path / "flat"
    write_image(flat / "a.png", rgb(8, 8, 1))
    (flat / "b.png").symlink_to(tmp_path / "secret.png")
    assert open_collection(str(flat)).names == ["a.png"]


def test_names_that_are_not_utf8_are_shown_escaped_and_stored_as_utf8(tmp_path, pixel_embedder, data_dir):
    import os

    from embeddings.index.store import build_index

    root = tmp_path / "pets"
    make_class_folder(root, classes=("dog",), per_class=2)
    raw = os.fsencode(root) + b"/caf\xe9"
    os.mkdir(raw)
    for i in range(2):
        with open(raw + b"/n\xefve-%d.png" % i, "wb") as fh:
            fh.write(encode_png(rgb(8, 8, i)))
    coll = open_collection(str(root))
    assert coll.classes == ["caf\\xe9", "dog"]
    assert coll.names[:2] == ["caf\\xe9/n\\xefve-0.png", "caf\\xe9/n\\xefve-1.png"]
    for text in [*coll.classes, *coll.names, coll.name]:
        text.encode("utf-8")  # displayable: no surrogates left
    assert coll.get_image(0).shape == (8, 8, 3)  # the file is still read under its real name
    assert source_fingerprint(str(root)) == coll.fingerprint() == open_collection(str(root)).fingerprint()
    index = build_index(coll, pixel_embedder, data_dir)
    manifest_bytes = (index.path / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes.decode("utf-8"))
    json.dumps(manifest, ensure_ascii=False).encode("utf-8")  # no lone surrogates anywhere
    assert manifest["classes"] == ["caf\\xe9", "dog"]
    from embeddings.index.store import load_index

    assert load_index(open_collection(str(root)), pixel_embedder, data_dir).count == 4  # stable: not stale


def test_a_folder_path_that_is_not_utf8_is_stored_escaped(tmp_path, pixel_embedder, data_dir):
    import os

    from embeddings.index.store import build_index

    raw = os.fsencode(tmp_path) + b"/ph\xf6tos"
    os.mkdir(raw)
    for i in range(2):
        with open(raw + b"/%d.png" % i, "wb") as fh:
            fh.write(encode_png(rgb(8, 8, i)))
    source = os.fsdecode(raw)
    coll = open_collection(source)
    coll.name.encode("utf-8")
    index = build_index(coll, pixel_embedder, data_dir)
    manifest = json.loads((index.path / "manifest.json").read_bytes().decode("utf-8"))
    json.dumps(manifest, ensure_ascii=False).encode("utf-8")


def encode_png(arr) -> bytes:
    from image_fixtures import encode

    return encode(arr, "PNG")


# ----------------------------------------------------------------------------- folders: memory


def _gradient(height: int, width: int) -> np.ndarray:
    """A smooth image (small as PNG, so big ones are cheap to write)."""
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    return np.stack(
        [np.broadcast_to(y, (height, width)), np.broadcast_to(x, (height, width)), (x + y) / 2], -1
    ).astype(np.uint8)


def test_large_images_are_reduced_on_decode_small_ones_untouched(tmp_path):
    from embeddings.image.io import DECODE_SHORT_SIDE

    big = _gradient(2 * DECODE_SHORT_SIDE + 50, 3 * DECODE_SHORT_SIDE)
    write_image(tmp_path / "big" / "a.png", big)
    write_image(tmp_path / "big" / "b.jpg", big)
    small = rgb(2 * DECODE_SHORT_SIDE - 1, 40, 1)  # shorter side below the bound: bitwise as before
    write_image(tmp_path / "big" / "c.png", small)
    for lazy in (False, True):
        coll = open_collection(str(tmp_path / "big")) if not lazy else None
        if lazy:
            import embeddings.image.folders as f

            old, f.EAGER_MAX_BYTES = f.EAGER_MAX_BYTES, 0
            try:
                coll = open_collection(str(tmp_path / "big"))
            finally:
                f.EAGER_MAX_BYTES = old
            assert isinstance(coll, LazyFolderCollection)
        a, b, c = (coll.get_image(i) for i in range(3))
        assert a.shape == (DECODE_SHORT_SIDE + 25, 3 * DECODE_SHORT_SIDE // 2, 3)  # reduced by 2
        assert min(b.shape[:2]) >= DECODE_SHORT_SIDE and b.shape[0] < big.shape[0]  # JPEG: draft + reduce
        np.testing.assert_array_equal(c, small)
        assert np.abs(a.astype(int) - big[::2, ::2].astype(int)).max() <= 2  # the same picture


def test_embedding_chunks_are_cut_by_decoded_bytes(monkeypatch):
    from embeddings.index import store

    class Sized:
        def __init__(self, sizes):
            self.sizes = sizes

        def __len__(self):
            return len(self.sizes)

        def image_nbytes(self, i):
            return self.sizes[i]

    monkeypatch.setattr(store, "EMBED_CHUNK_BYTES", 100)
    monkeypatch.setattr(store, "EMBED_CHUNK", 4)
    chunks = store.embed_chunks(Sized([60, 30, 20, 500, 10, 10, 10, 10, 10, 10]))
    assert [list(c) for c in chunks] == [[0, 1], [2], [3], [4, 5, 6, 7], [8, 9]]


def test_embedding_a_folder_of_large_images_peaks_near_one_image(tmp_path, monkeypatch, pixel_embedder):
    import tracemalloc

    from embeddings.image import collection as collection_module
    from embeddings.index import store
    from embeddings.index.store import embed_collection

    side = 2600
    for i in range(8):
        write_image(tmp_path / "big" / f"{i}.png", _gradient(side, side))
    one_image = side * side * 3  # 20 MB decoded at full size; 8 of them: 162 MB
    monkeypatch.setattr(folders, "EAGER_MAX_BYTES", 0)  # decoded on demand, as a big folder is
    monkeypatch.setattr(collection_module, "LAZY_CACHE_BYTES", 0)  # the display cache is bounded on its own
    monkeypatch.setattr(store, "EMBED_CHUNK_BYTES", 8 * 2**20)  # a budget below one full-size image
    coll = open_collection(str(tmp_path / "big"))
    assert isinstance(coll, LazyFolderCollection)
    tracemalloc.start()
    try:
        vectors = embed_collection(coll, pixel_embedder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert vectors.shape == (8, pixel_embedder.dim)
    assert peak < one_image, f"peak {peak / 2**20:.0f} MB for images of {one_image / 2**20:.0f} MB each"
