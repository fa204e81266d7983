import json
import multiprocessing as mp
import re

import numpy as np
import pytest

from embeddings import cli
from embeddings.errors import CorruptIndexError, IndexNotBuiltError, InvalidInputError, StaleIndexError
from embeddings.index import approximate, service
from embeddings.index import store as idx
from tests.conftest import ArrayCollection, make_colour_images


def test_round_trip_and_search(colour_collection, pixel_embedder, data_dir):
    built, status = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    assert status.action == "built"
    loaded = idx.load_index(colour_collection, pixel_embedder, data_dir)
    assert loaded.count == len(colour_collection) and loaded.dim == pixel_embedder.dim
    np.testing.assert_array_equal(loaded.embeddings, built.embeddings)
    np.testing.assert_allclose(np.linalg.norm(loaded.embeddings, axis=1), 1.0, atol=1e-5)
    manifest = json.loads((loaded.path / "manifest.json").read_text())
    assert manifest["key"]["model"]["model_id"] == "pixels"
    assert manifest["key"]["model"]["preprocess"]["resize"] == 16
    assert manifest["key"]["collection"]["fingerprint"] == colour_collection.fingerprint()
    assert {"package_version", "format"} <= set(manifest["key"]) and manifest["built_at"]
    # every neighbour of a colour square is the same colour
    ids, scores = loaded.neighbours(np.arange(loaded.count), k=5)
    assert (loaded.labels[ids] == loaded.labels[:, None]).all()
    assert (ids != np.arange(loaded.count)[:, None]).all()  # self excluded
    assert (np.diff(scores, axis=1) <= 1e-6).all() and scores.max() <= 1.0
    # second call loads instead of building
    _, status = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    assert status.action == "loaded"


def test_search_many_queries_matches_bruteforce(colour_collection, pixel_embedder, data_dir):
    index, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    queries = index.embeddings[[0, 7, 13]]
    ids, scores = index.search(queries, k=4)
    brute = queries @ index.embeddings.T
    np.testing.assert_allclose(scores, -np.sort(-brute, axis=1)[:, :4], atol=1e-5)
    assert ids.shape == (3, 4)


def test_bad_search_arguments(colour_collection, pixel_embedder, data_dir):
    index, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    with pytest.raises(InvalidInputError, match="out of range"):
        index.neighbours([len(colour_collection)], k=3)
    with pytest.raises(InvalidInputError, match="out of range"):
        index.neighbours([-1], k=3)
    with pytest.raises(InvalidInputError, match="positive integer"):
        index.neighbours([0], k=0)
    with pytest.raises(InvalidInputError, match="more than"):
        index.neighbours([0], k=len(colour_collection))
    with pytest.raises(InvalidInputError, match="-d"):
        index.search(np.ones((1, 3), dtype=np.float32), k=2)


def test_missing_index_raises(colour_collection, pixel_embedder, data_dir):
    with pytest.raises(IndexNotBuiltError):
        idx.load_index(colour_collection, pixel_embedder, data_dir)


def test_changed_collection_is_stale_and_rebuilt(colour_collection, pixel_embedder, data_dir):
    service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    images, labels = make_colour_images(seed=1)  # same name/size, different pixels
    changed = ArrayCollection(images, labels, colour_collection.classes)
    with pytest.raises(StaleIndexError, match="fingerprint"):
        idx.load_index(changed, pixel_embedder, data_dir)
    index, status = service.get_or_build_index(changed, pixel_embedder, data_dir)
    assert status.action == "rebuilt" and "fingerprint" in status.reason
    assert idx.load_index(changed, pixel_embedder, data_dir).count == index.count


def test_manifest_mismatch_other_model_or_version_triggers_rebuild(
    colour_collection, pixel_embedder, data_dir, monkeypatch
):
    service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    monkeypatch.setattr(idx, "__version__", "999.0")
    with pytest.raises(StaleIndexError, match="package_version"):
        idx.load_index(colour_collection, pixel_embedder, data_dir)
    _, status = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    assert status.action == "rebuilt"


@pytest.mark.parametrize("name", ["embeddings.npy", "index-flat.faiss", "labels.npy", "manifest.json"])
def test_truncated_file_detected_and_rebuilt(colour_collection, pixel_embedder, data_dir, name):
    index, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    path = index.path / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptIndexError):
        idx.load_index(colour_collection, pixel_embedder, data_dir)
    rebuilt, status = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    assert status.action == "rebuilt"
    np.testing.assert_array_equal(rebuilt.embeddings, index.embeddings)


def test_flipped_byte_detected(colour_collection, pixel_embedder, data_dir):
    index, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    path = index.path / "embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptIndexError, match="checksum"):
        idx.load_index(colour_collection, pixel_embedder, data_dir)


class ExplodingEmbedder:
    """Wraps an embedder and fails after the first chunk, like a build killed halfway."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim

    def fingerprint(self):
        return self.inner.fingerprint()

    def embed(self, images, progress=None):
        raise KeyboardInterrupt("killed mid-build")


def test_interrupted_build_leaves_nothing_loadable(colour_collection, pixel_embedder, data_dir):
    with pytest.raises(KeyboardInterrupt):
        idx.build_index(colour_collection, ExplodingEmbedder(pixel_embedder), data_dir)
    with pytest.raises(IndexNotBuiltError):
        idx.load_index(colour_collection, pixel_embedder, data_dir)


def test_failed_rebuild_keeps_previous_good_index(colour_collection, pixel_embedder, data_dir, monkeypatch):
    good, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(idx, "write_json_atomic", disk_full)
    with pytest.raises(OSError, match="No space"):
        idx.build_index(colour_collection, pixel_embedder, data_dir)
    monkeypatch.undo()
    again = idx.load_index(colour_collection, pixel_embedder, data_dir)
    np.testing.assert_array_equal(again.embeddings, good.embeddings)
    assert not list(good.path.parent.glob(".tmp-*"))


def _build_in_process(data_dir, queue):
    from embeddings.models.baselines import PixelImageEmbedder
    from tests.conftest import ArrayCollection, make_colour_images

    images, labels = make_colour_images(per_class=40)
    collection = ArrayCollection(images, labels, ["red", "green", "blue"])
    index, status = service.get_or_build_index(collection, PixelImageEmbedder(), data_dir)
    queue.put((status.action, index.count))


def test_two_processes_building_at_once(data_dir):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_in_process, args=(str(data_dir), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    results = sorted(queue.get(timeout=5) for _ in procs)
    assert [r[1] for r in results] == [120, 120]
    assert sorted(r[0] for r in results) == ["built", "loaded"]


def test_approximate_index_recall(data_dir, pixel_embedder):
    images, labels = make_colour_images(per_class=100)
    collection = ArrayCollection(images, labels, ["red", "green", "blue"])
    index, _ = service.get_or_build_index(collection, pixel_embedder, data_dir)
    recall = approximate.approximate_recall(index, k=10, n_queries=100)
    assert 0.9 <= recall <= 1.0
    reloaded = idx.load_index(collection, pixel_embedder, data_dir)  # hnsw file is in the manifest
    assert reloaded.approximate is not None
    ids, _ = reloaded.neighbours([0], k=5, approximate=True)
    assert (reloaded.labels[ids] == reloaded.labels[0]).all()


# ------------------------------------------------------------------ manifests valid as JSON, wrong in shape


def _set(path: str, value):
    """A damage that sets the manifest field at ``path`` ("key/format": keys joined by slashes; deleted
    when ``value`` is DELETE)."""

    def damage(folder, manifest):
        *parents, last = path.split("/")
        node = manifest
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
        return manifest

    return damage


DELETE = object()


def _rewrite(name: str, change):
    """A damage that rewrites ``name`` (a .npy file) with ``change(array)`` and records its new size and
    sha256 in the manifest, so only the contents' meaning is wrong (the checksums all match)."""

    def damage(folder, manifest):
        path = folder / name
        np.save(path, change(np.load(path)), allow_pickle=False)
        manifest["files"][name] = idx.file_entry(path)
        return manifest

    return damage


def _with_nan(vectors):
    vectors[3, 0] = np.nan
    return vectors


def _with_inf(vectors):
    vectors[0, 5] = np.inf
    return vectors


def _label(value):
    def change(labels):
        labels[4] = value
        return labels

    return change


def _outside_link(folder, manifest):
    """embeddings.npy replaced by a link to an identical copy outside the index folder."""
    outside = folder.parent.parent / "elsewhere.npy"
    outside.write_bytes((folder / "embeddings.npy").read_bytes())
    (folder / "embeddings.npy").unlink()
    (folder / "embeddings.npy").symlink_to(outside)
    return manifest


def _rename(old: str, new: str):
    def damage(folder, manifest):
        manifest["files"][new] = manifest["files"].pop(old)
        return manifest

    return damage


SHAPE_DAMAGE = {
    "not-an-object": lambda folder, manifest: [manifest],
    "key-not-an-object": _set("key", "pixels"),
    "format-a-string": _set("key/format", "1"),
    "no-model-id": _set("key/model", {}),
    "collection-not-an-object": _set("key/collection", None),
    "no-count": _set("count", DELETE),
    "count-zero": _set("count", 0),
    "count-a-string": _set("count", "120"),
    "count-a-bool": _set("count", True),
    "count-not-the-collections": _set("count", 17),
    "no-dim": _set("dim", DELETE),
    "dim-negative": _set("dim", -4),
    "classes-not-a-list": _set("classes", "red green blue"),
    "classes-not-strings": _set("classes", [1, 2, 3]),
    "classes-duplicated": _set("classes", ["red", "red", "blue"]),
    "classes-too-few-for-the-labels": _set("classes", ["red"]),
    "classes-not-the-collections": _set("classes", ["blue", "green", "red"]),
    "no-built-at": _set("built_at", DELETE),
    "built-at-a-number": _set("built_at", 12),
    "build-seconds-nan": _set("build_seconds", float("nan")),
    "files-a-list": _set("files", ["embeddings.npy"]),
    "files-empty": _set("files", {}),
    "file-entry-a-string": _set("files/embeddings.npy", "abc"),
    "file-bytes-missing": _set("files/index-flat.faiss", {"sha256": "0" * 64}),
    "file-bytes-negative": _set("files/labels.npy", {"bytes": -1, "sha256": "0" * 64}),
    "file-sha256-not-hex": _set("files/labels.npy", {"bytes": 10, "sha256": "z" * 64}),
    "labels-not-listed": _set("files/labels.npy", DELETE),
    "flat-not-listed": _set("files/index-flat.faiss", DELETE),
    "name-with-dotdot": _rename("labels.npy", "../labels.npy"),
    "name-absolute": _rename("labels.npy", "/etc/passwd"),
    "name-in-a-subfolder": _rename("labels.npy", "sub/labels.npy"),
    "name-unknown": _rename("labels.npy", "labels.txt"),
    "link-leaving-the-folder": _outside_link,
    "label-out-of-range": _rewrite("labels.npy", _label(3)),
    "label-negative": _rewrite("labels.npy", _label(-1)),
    "labels-floats": _rewrite("labels.npy", lambda labels: labels.astype(np.float32)),
    "vector-nan": _rewrite("embeddings.npy", _with_nan),
    "vector-inf": _rewrite("embeddings.npy", _with_inf),
}


@pytest.mark.parametrize("damage", SHAPE_DAMAGE.values(), ids=SHAPE_DAMAGE.keys())
def test_manifest_of_the_wrong_shape_is_corrupt_and_rebuilt(
    colour_collection, pixel_embedder, data_dir, damage
):
    index, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    path = index.path / "manifest.json"
    path.write_text(json.dumps(damage(index.path, json.loads(path.read_text()))))
    with pytest.raises(CorruptIndexError):
        idx.load_index(colour_collection, pixel_embedder, data_dir)
    rebuilt, status = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    assert status.action == "rebuilt", status
    np.testing.assert_array_equal(rebuilt.embeddings, index.embeddings)
    assert idx.load_index(colour_collection, pixel_embedder, data_dir).count == len(colour_collection)


def test_peek_manifest_ignores_a_manifest_of_the_wrong_shape(colour_collection, pixel_embedder, data_dir):
    index, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    assert idx.peek_manifest(colour_collection, "pixels", data_dir)["count"] == len(colour_collection)
    path = index.path / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["built_at"]
    path.write_text(json.dumps(manifest))
    assert idx.peek_manifest(colour_collection, "pixels", data_dir) is None


def test_an_empty_files_map_does_not_skip_the_checksums(colour_collection, pixel_embedder, data_dir):
    index, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    (index.path / "embeddings.npy").write_bytes(b"garbage")
    path = index.path / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "files": {}}))
    with pytest.raises(CorruptIndexError, match="does not list"):
        idx.load_index(colour_collection, pixel_embedder, data_dir, verify=False)


def test_an_id_beyond_int64_is_out_of_range(colour_collection, pixel_embedder, data_dir):
    index, _ = service.get_or_build_index(colour_collection, pixel_embedder, data_dir)
    valid = f"valid ids are 0..{len(colour_collection) - 1}"
    for huge in (99999999999999999999999, -(10**30)):
        with pytest.raises(InvalidInputError, match=f"image id {huge} is out of range: {valid}"):
            index.neighbours([huge], k=3)
    with pytest.raises(InvalidInputError, match="must be integers"):
        index.neighbours(["3"], k=3)


def test_cli_search_with_an_over_long_id_names_the_valid_range(data_dir, capsys):
    argv = ["--data-dir", str(data_dir), "search", "--data", "sample", "--model", "pixels"]
    assert cli.main([*argv, "--id", "99999999999999999999999"]) == 2
    err = capsys.readouterr().err
    assert re.search(
        r"error: image id 99999999999999999999999 is out of range: valid ids are 0\.\.\d+$", err, re.M
    )
    assert "Traceback" not in err


# ------------------------------------------------------------------ the pipelined embed_collection


class RecordingCollection:
    """Wraps a collection: counts decoded batches, can hold batch 0 until batch 1 has been decoded
    (so batches finish out of order) and can fail on one batch."""

    def __init__(self, inner, fail_at=None, hold_first=False):
        import threading

        self.inner, self.fail_at, self.hold_first = inner, fail_at, hold_first
        self.labels, self.classes = inner.labels, inner.classes
        self.second_done = threading.Event()
        self.started = []
        self.lock = threading.Lock()

    def __len__(self):
        return len(self.inner)

    def describe(self):
        return self.inner.describe()

    def get_images(self, ids):
        with self.lock:
            self.started.append(ids[0])
        if self.fail_at is not None and ids[0] == self.fail_at:
            raise OSError("disk read error in a worker")
        if self.hold_first and ids[0] == 0:
            assert self.second_done.wait(timeout=60)  # a safety net, not a timing assumption
        images = self.inner.get_images(ids)
        if ids[0] > 0:
            self.second_done.set()
        return images


def test_pipelined_embedding_matches_serial_exactly(colour_collection, pixel_embedder):
    pixel_embedder.batch_size = 7  # 18 images: 3 batches, the last one short
    n = len(colour_collection)
    serial = idx.embed_collection(colour_collection, pixel_embedder, workers=0)
    seen = []
    held = RecordingCollection(colour_collection, hold_first=True)  # batch 1 is ready before batch 0
    piped = idx.embed_collection(held, pixel_embedder, progress=lambda d, t: seen.append((d, t)), workers=2)
    np.testing.assert_array_equal(piped, serial)
    np.testing.assert_array_equal(serial, pixel_embedder.embed(colour_collection.get_images(range(n))))
    assert seen == [(7, n), (14, n), (n, n)]


def test_pipeline_keeps_at_most_a_few_batches_ahead(colour_collection, pixel_embedder):
    pixel_embedder.batch_size = 2  # 9 batches
    rec = RecordingCollection(colour_collection)
    ahead = []

    def progress(done, total):
        with rec.lock:
            ahead.append(len(rec.started) - done // 2)

    idx.embed_collection(rec, pixel_embedder, progress=progress, workers=2, prefetch=3)
    assert len(rec.started) == len(colour_collection) // 2 and max(ahead) <= 3


def test_worker_error_stops_the_pipeline_cleanly(colour_collection, pixel_embedder):
    import threading

    pixel_embedder.batch_size = 2
    rec = RecordingCollection(colour_collection, fail_at=6)  # the fourth batch
    with pytest.raises(OSError, match="disk read error"):
        idx.embed_collection(rec, pixel_embedder, workers=2, prefetch=3)
    assert len(rec.started) <= 4 + 3  # the rest were never decoded
    assert not [t for t in threading.enumerate() if t.name.startswith("embeddings-decode")]


def test_duck_typed_embedders_get_decoded_batches(colour_collection, pixel_embedder):
    class EmbedOnly:
        model_id, dim, batch_size = pixel_embedder.model_id, pixel_embedder.dim, 16

        def embed(self, images, progress=None):
            return pixel_embedder.embed(images)

    out = idx.embed_collection(colour_collection, EmbedOnly())
    np.testing.assert_array_equal(out, idx.embed_collection(colour_collection, pixel_embedder, workers=0))
