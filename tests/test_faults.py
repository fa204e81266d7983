"""Faults: OpenAI failing in every way, no network, damaged or half-written indexes, killed writers.

What tests/test_openai_backend.py, tests/test_index.py, tests/test_embedding_cache.py,
tests/test_image_backends.py and tests/test_datasets.py already cover (scripted HTTP errors
through a mock transport, truncated/corrupt/stale indexes, two processes building at once, a
kill inside one cache transaction, downloads with ``download_file`` patched) is not repeated.
Added here: the same faults end to end, through the page and real sockets (the OpenAI client
the app builds from ``OPENAI_BASE_URL``, DNS failures, a server that never answers), index
builds killed with SIGKILL in a real subprocess, a full disk (in the package, the CLI and the app),
a read-only data folder, manifests of the wrong shape, and SQLite writers killed mid-loop.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import faiss
import numpy as np
import pytest
import streamlit as st
from openai_server import MockOpenAIServer, closed_port_url
from streamlit.testing.v1 import AppTest

from embeddings import cli, registry
from embeddings.core import downloads
from embeddings.core.fingerprint import sha256_file
from embeddings.errors import (
    DatasetUnavailableError,
    EmbeddingsError,
    IndexNotBuiltError,
    RemoteServiceError,
)
from embeddings.image.collections import default_source, open_collection
from embeddings.index import service
from embeddings.index import store as idx
from embeddings.models import minilm
from embeddings.models import openai as tb
from embeddings.models import resnet as ib
from embeddings.models.baselines import PixelImageEmbedder
from embeddings.text.cache import EmbeddingCache
from tests.conftest import ArrayCollection, make_colour_images, shown_text, type_words, wait_for_jobs

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
TIMEOUT = 90
FAKE_KEY = "sk-test-faults-0123456789abcdef"
OPENAI = "openai:text-embedding-3-small"
pytestmark = pytest.mark.app_env(fresh_caches=True)  # a cached OpenAI client would point at an old server


def use_openai(monkeypatch, base_url: str | None, key: str | None = FAKE_KEY) -> None:
    monkeypatch.setenv("EMBEDDINGS_TEXT_MODEL", OPENAI)
    if key:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    if base_url:
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)


def words_page(words: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/words.py").run()
    return type_words(at, words)


def has_heatmap(at: AppTest) -> bool:
    return any(c.key == "words_heatmap" for c in at.get("plotly_chart"))


def errors(at: AppTest) -> str:
    return "\n".join(shown_text(e.value) for e in at.error)


def offers_local_model(at: AppTest) -> bool:
    return any("choose the `local` text model" in i.value for i in at.info)


def cache_count(data_dir: Path) -> int:
    return EmbeddingCache(data_dir=data_dir).count()


# ------------------------------------------------------------------------------ OpenAI: the page


def test_no_key_explains_and_offers_the_local_model(app_env, monkeypatch):
    use_openai(monkeypatch, closed_port_url(), key=None)
    at = words_page()
    assert not at.exception
    assert "No OpenAI API key found" in errors(at) and "OPENAI_API_KEY" in errors(at)
    assert offers_local_model(at) and not has_heatmap(at)
    assert "needs a key" in str(at.sidebar.selectbox(key="text_model").proto)


def test_rejected_key_explains_and_is_not_retried(app_env, monkeypatch):
    with MockOpenAIServer(script=[401]) as server:
        use_openai(monkeypatch, server.base_url)
        at = words_page()
        assert not at.exception
        assert "OpenAI rejected the key (HTTP 401)" in errors(at) and offers_local_model(at)
        assert FAKE_KEY not in errors(at)  # the server echoed it; the message does not
        assert len(server.requests) == 1 and server.requests[0]["authorization"] == f"Bearer {FAKE_KEY}"
    assert not has_heatmap(at) and cache_count(app_env) == 0


def test_rate_limit_is_recovered_by_a_retry(app_env, monkeypatch):
    with MockOpenAIServer(script=[429], headers={"retry-after-ms": "50"}) as server:
        use_openai(monkeypatch, server.base_url)
        at = words_page()
        assert not at.exception and not at.error
        assert has_heatmap(at)
        assert len(server.requests) == 2  # the 429, then the same request again
    assert cache_count(app_env) == 9


def test_network_down_explains_within_seconds(app_env, monkeypatch):
    use_openai(monkeypatch, closed_port_url())  # nothing listens: every connection is refused
    start = time.perf_counter()
    at = words_page()
    elapsed = time.perf_counter() - start
    assert not at.exception
    assert "could not be reached" in errors(at) and "gave up after 3 attempts" in errors(at)
    assert offers_local_model(at) and not has_heatmap(at)
    assert elapsed < 15, f"the page took {elapsed:.1f} s to give up"  # was 15-31 s of backoff


@pytest.mark.ci_after  # 10 s: 600 words through the mock OpenAI server
def test_failed_request_caches_only_complete_responses(app_env, monkeypatch):
    words = ", ".join(f"word{i}" for i in range(600))  # two requests: 512 + 88
    with MockOpenAIServer() as server:
        use_openai(monkeypatch, server.base_url)
        at = words_page()  # the default words first
        server.script = ["ok", 404]  # the second request of the 600 fails (not retried)
        at.text_area(key="words_input").set_value(words).run()
        assert not at.exception and "HTTP 404" in errors(at) and not at.dataframe
        assert cache_count(app_env) == 9 + 512  # the complete first response only
        at.run()  # the user tries again: the failure was not cached, only 88 texts are fetched
        assert not at.exception and not at.error
        assert len(at.dataframe) == 2  # 600 items: the most/least similar pairs (too many for a heatmap)
        assert len(server.requests[-1]["body"]["input"]) == 88
    assert cache_count(app_env) == 9 + 600


# ------------------------------------------------------------------------------ OpenAI: real sockets


def embedder(server_url: str, data_dir: Path, **kwargs) -> tb.OpenAIEmbedder:
    sleeps = kwargs.pop("sleeps", [])
    return tb.OpenAIEmbedder(
        api_key=FAKE_KEY,
        base_url=server_url,
        cache=EmbeddingCache(data_dir / "cache.sqlite3"),
        sleep=sleeps.append if sleeps is not None else time.sleep,
        **kwargs,
    )


def test_read_timeout_is_retried(tmp_path):
    with MockOpenAIServer(script=[2.0]) as server:  # the first answer comes after 2 s
        vectors = embedder(server.base_url, tmp_path, timeout=0.5).embed(["cat", "dog"])
        assert vectors.shape == (2, 1536) and len(server.requests) == 2


def test_timeouts_exhaust_retries_and_cache_nothing(tmp_path):
    with MockOpenAIServer(script=[2.0, 2.0]) as server:
        with pytest.raises(RemoteServiceError, match=r"did not answer within 0.5 s; gave up after 2"):
            embedder(server.base_url, tmp_path, timeout=0.5, max_attempts=2).embed(["cat"])
    assert EmbeddingCache(tmp_path / "cache.sqlite3").count() == 0


def test_unreachable_host_gives_up_after_three_attempts(tmp_path):
    sleeps = []
    start = time.perf_counter()
    with pytest.raises(RemoteServiceError, match="could not be reached.*gave up after 3 attempts"):
        embedder(closed_port_url(), tmp_path, sleeps=sleeps, max_attempts=6).embed(["cat"])
    assert len(sleeps) == 2 and time.perf_counter() - start < 5
    assert EmbeddingCache(tmp_path / "cache.sqlite3").count() == 0


# ------------------------------------------------------------------------------ offline downloads


@pytest.fixture
def no_dns(monkeypatch):
    """Name resolution fails the way it does with the network down; records every lookup."""
    lookups = []

    def fail(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    return lookups


@pytest.fixture
def empty_torch_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    downloads.clear_download_failures()
    yield tmp_path / "torch"
    downloads.clear_download_failures()


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a hung or black-holed server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_resnet18_weights_offline_fall_back_fast(no_dns, empty_torch_hub):
    start = time.perf_counter()
    model, reason = registry.resolve_image_model("resnet18")
    assert time.perf_counter() - start < 5
    assert model == "efficientnet_lite0"
    assert "could not be downloaded" in reason and "offline" in reason and "EfficientNet-Lite0" in reason
    assert len(no_dns) == 1  # one lookup (download.pytorch.org, or a proxy), failed at once
    registry.resolve_image_model("resnet18")  # the failure is remembered: no second wait
    assert len(no_dns) == 1
    assert not any(p.is_file() for p in empty_torch_hub.rglob("*"))  # no partial weights file


def test_resnet18_download_from_a_hung_server_times_out(empty_torch_hub, silent_server, monkeypatch):
    monkeypatch.setattr(ib, "RESNET18_URL", f"{silent_server}/resnet18-f37072fd.pth")
    start = time.perf_counter()
    model, reason = registry.resolve_image_model("resnet18")
    elapsed = time.perf_counter() - start
    assert model == "efficientnet_lite0" and "timed out" in reason
    assert downloads.DOWNLOAD_TIMEOUT_S <= elapsed < downloads.DOWNLOAD_TIMEOUT_S + 5


def test_cifar10_offline_fails_fast_with_the_sample_as_fallback(no_dns, tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="could not be downloaded") as info:
        open_collection("cifar10", data_dir=tmp_path)
    assert time.perf_counter() - start < 5 and len(no_dns) == 1
    assert "--data sample" in str(info.value)
    assert default_source(tmp_path) == "sample"
    assert [p for p in (tmp_path / "cifar10").rglob("*") if p.is_file()] == []  # no partial archive


def test_minilm_never_asks_the_hub(no_dns, tmp_path, monkeypatch):
    import huggingface_hub.constants

    connects = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda s, a: connects.append(a) or real_connect(s, a))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    minilm._minilm_source.cache_clear()
    try:
        start = time.perf_counter()
        assert minilm.minilm_hf_cache_dir() is None
        origin, folder, sha = minilm.minilm_source(tmp_path / "data")
        assert time.perf_counter() - start < 5
    finally:
        minilm._minilm_source.cache_clear()
    assert origin == "package" and sha == minilm.MINILM_WEIGHTS_SHA256 and "all-MiniLM-L6-v2" in folder
    assert no_dns == [] and connects == []  # not even tried


def test_app_starts_fast_offline(app_env, no_dns, empty_torch_hub):
    start = time.perf_counter()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert time.perf_counter() - start < 20
    assert not at.exception and not at.error
    # the default image model's weights were looked for online (and the lookup failed at once)
    assert no_dns and set(no_dns) <= {"download.pytorch.org", "huggingface.co"}


# ------------------------------------------------------------------------------ index: killed builds


BUILDER = """
import os, sys, time
from embeddings.index import store as idx
from embeddings.models.baselines import PixelImageEmbedder
from tests.conftest import ArrayCollection, make_colour_images

data_dir, phase = sys.argv[1], sys.argv[2]

def stall(where):
    print(where, flush=True)
    time.sleep(120)

if phase == "writing":  # killed with embeddings.npy written into the temporary folder
    real_save = idx.save_npy_atomic
    def save(path, array):
        real_save(path, array)
        stall("WRITING")
    idx.save_npy_atomic = save
elif phase == "swapping":  # killed between the two renames that swap the new folder in
    def swap(tmp, folder):
        os.replace(folder, folder.parent / f".old-{folder.name}-{os.getpid()}-0")
        stall("SWAPPING")
    idx._swap_in = swap
images, labels = make_colour_images(per_class=40)
idx.build_index(ArrayCollection(images, labels, ["red", "green", "blue"]), PixelImageEmbedder(), data_dir)
"""


def colour_collection_120() -> ArrayCollection:
    images, labels = make_colour_images(per_class=40)
    return ArrayCollection(images, labels, ["red", "green", "blue"])


def kill_build_at(data_dir: Path, phase: str) -> None:
    """Run a build in a subprocess and SIGKILL it when it reaches ``phase``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BUILDER), str(data_dir), phase],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line == phase.upper(), f"the builder printed {line!r}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def in_thread(fn, timeout: float = 120):
    """Run ``fn`` in a thread and return its result; fail (not hang) if a dead process's lock held it."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", fn()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert "value" in result, "blocked: the killed builder's lock was not released"
    return result["value"]


def leftovers(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "indexes").glob(".*") if p.is_dir())


@pytest.mark.parametrize(
    "phase, previous",
    [("writing", False), ("writing", True), ("swapping", True)],
    ids=["first-build-killed-writing", "rebuild-killed-writing", "rebuild-killed-mid-swap"],
)
def test_build_killed_with_sigkill(data_dir, phase, previous):
    collection, pixels = colour_collection_120(), PixelImageEmbedder()
    good = service.get_or_build_index(collection, pixels, data_dir)[0] if previous else None
    kill_build_at(data_dir, phase)
    assert leftovers(data_dir), "the kill should have left a temporary folder behind"
    if previous and phase == "writing":  # the previous good index is untouched and still loads
        np.testing.assert_array_equal(
            idx.load_index(collection, pixels, data_dir).embeddings, good.embeddings
        )
    else:  # nothing half-written is ever loaded
        with pytest.raises(IndexNotBuiltError):
            idx.load_index(collection, pixels, data_dir)
    index, status = in_thread(lambda: service.get_or_build_index(collection, pixels, data_dir))
    assert index.count == 120 and status.action == ("loaded" if previous and phase == "writing" else "built")
    idx.build_index(collection, pixels, data_dir)  # a later build clears what the dead one left
    assert leftovers(data_dir) == []


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_on_the_first_write(data_dir, monkeypatch):
    collection, pixels = colour_collection_120(), PixelImageEmbedder()
    with monkeypatch.context() as patch, pytest.raises(OSError) as info:
        patch.setattr(np, "save", disk_full)  # the first file of the build cannot be written
        service.get_or_build_index(collection, pixels, data_dir)
    assert info.value.errno == errno.ENOSPC
    assert leftovers(data_dir) == [] and not list((data_dir / "indexes").glob(".*.tmp"))
    with pytest.raises(IndexNotBuiltError):
        idx.load_index(collection, pixels, data_dir)
    assert service.get_or_build_index(collection, pixels, data_dir)[1].action == "built"  # space freed


# ------------------------------------------------------------------------------ index: the CLI


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


BUILD = ["build-index", "--data", "sample", "--model", "pixels"]


def short_write(*args, **kwargs):
    raise OSError("1536000 requested and 1310688 written")  # what numpy raises when the disk fills mid-array


def faiss_disk_full(*args, **kwargs):
    raise RuntimeError(
        "Error in void faiss::write_index(const Index*, IOWriter*, int) at index_write.cpp:499: "
        "Error: 'ret == (size * 4)' failed: write error in x: 4051 != 2400000 (No space left on device)"
    )


def permission_denied(*args, **kwargs):  # a read-only data folder (as root, chmod would not stop the write)
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "somewhere")


@pytest.mark.parametrize(
    "target, name, fault, expected",
    [
        (np, "save", disk_full, "the disk is full: free some space"),
        (np, "save", short_write, "the disk is full: free some space"),
        (faiss, "write_index", faiss_disk_full, "the disk is full: free some space"),
        (tempfile, "mkdtemp", permission_denied, "permission denied: make the data folder writable"),
        (os, "replace", permission_denied, "permission denied: make the data folder writable"),
    ],
    ids=["enospc", "short-write", "faiss-enospc", "read-only-mkdtemp", "read-only-replace"],
)
def test_cli_reports_os_errors_in_one_line_with_status_2(
    data_dir, capsys, caplog, monkeypatch, target, name, fault, expected
):
    caplog.set_level(logging.INFO, logger="embeddings.cli")
    monkeypatch.setattr(target, name, fault)
    code, _, err = run_cli(["--data-dir", str(data_dir), *BUILD], capsys)
    monkeypatch.undo()
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert expected in line and line.endswith("then run the command again (-v shows the details)"), line
    assert "Errno" not in line and str(data_dir) not in line
    assert "details: " in caplog.text  # the raw error goes to the log
    assert leftovers(data_dir) == []
    assert run_cli(["--data-dir", str(data_dir), *BUILD], capsys)[0] == 0  # space freed, folder writable


def test_cli_data_folder_that_is_a_file(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    code, _, err = run_cli(["--data-dir", str(a_file), *BUILD], capsys)
    assert code == 2 and "Traceback" not in err
    assert "error: the data folder (--data-dir) is a file, not a folder: give a folder" in err
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(a_file))
    code, _, err = run_cli(BUILD, capsys)
    assert code == 2 and "error: the data folder ($EMBEDDINGS_DATA_DIR" in err
    code, _, err = run_cli(["--data-dir", str(a_file / "below"), *BUILD], capsys)
    assert code == 2 and "Traceback" not in err
    assert "error: a path that should be a folder is a file: point the data folder" in err


def test_cli_keeps_the_traceback_of_a_bug(data_dir, capsys, monkeypatch):
    def bug(*args, **kwargs):
        raise TypeError("a programming error")

    monkeypatch.setattr(idx, "embed_collection", bug)
    with pytest.raises(TypeError, match="a programming error"):
        cli.main(["--data-dir", str(data_dir), *BUILD])


# ------------------------------------------------------------------------------ index: the app


def images_page_settled(at: AppTest) -> AppTest:
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("fault", [disk_full, short_write], ids=["enospc", "short-write"])
def test_app_reports_a_full_disk_and_retries(app_env, monkeypatch, fault):
    full = {"on": True}
    real_save = np.save

    def save(*args, **kwargs):
        if full["on"]:
            fault()
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/images.py").run()
    images_page_settled(at)
    message = errors(at)
    assert "Building the index failed: the disk is full" in message and "Free some space" in message
    assert "Errno" not in message and "requested and" not in message and str(app_env) not in message
    details = "\n".join(c.value for c in at.code)  # the raw error, in the "Details" expander
    assert "No space left on device" in details
    full["on"] = False  # the user frees some space and presses the button
    next(b for b in at.button if b.label == "Try again").click().run()
    images_page_settled(at)
    assert not at.error and "Pick a query" in "\n".join(i.value for i in at.info)


def test_app_rebuilds_an_index_damaged_on_disk(app_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/images.py").run()
    images_page_settled(at)
    (folder,) = [p for p in (app_env / "indexes").iterdir() if p.is_dir()]
    vectors = folder / "embeddings.npy"
    data = bytearray(vectors.read_bytes())
    data[-10:] = b"\xff" * 10
    vectors.write_bytes(bytes(data))
    st.cache_resource.clear()  # as after a server restart: the index is read from disk again
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/images.py").run()
    assert at.get("progress"), "the damaged index should be rebuilt in the background"
    images_page_settled(at)
    assert not at.error and "Pick a query" in "\n".join(i.value for i in at.info)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sha256_file(vectors) == manifest["files"]["embeddings.npy"]["sha256"]


def _without(field):
    def damage(manifest):
        del manifest[field]

    return damage


def _set_field(field, value):
    def damage(manifest):
        manifest[field] = value

    return damage


def _set_file_entry(manifest):
    manifest["files"]["embeddings.npy"] = "not an entry"


@pytest.mark.parametrize(
    "damage",
    [_without("count"), _set_field("classes", "a b c"), _set_file_entry, _set_field("files", {})],
    ids=["no-count", "classes-a-string", "file-entry-a-string", "files-empty"],
)
def test_app_rebuilds_an_index_whose_manifest_has_the_wrong_shape(app_env, damage):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/images.py").run()
    images_page_settled(at)
    (folder,) = [p for p in (app_env / "indexes").iterdir() if p.is_dir()]
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    damage(manifest)
    path.write_text(json.dumps(manifest))
    st.cache_resource.clear()  # as after a server restart: the index is read from disk again
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/images.py").run()
    assert not at.exception, [e.value for e in at.exception]
    (bar,) = at.get("progress")
    assert "Rebuilding the index (the saved index is damaged)" in bar.proto.text
    images_page_settled(at)
    assert not at.error and "Pick a query" in "\n".join(i.value for i in at.info)
    assert json.loads(path.read_text())["count"] == manifest.get("count", 2000)


# ------------------------------------------------------------------------------ SQLite cache


WRITER_LOOP = """
import sys
import numpy as np
from embeddings.text.cache import EmbeddingCache
path, name = sys.argv[1], sys.argv[2]
cache = EmbeddingCache(path)
batch = 0
while True:
    cache.put_many("m", [(f"{name}-{batch}-{i}", np.full(4, batch * 100 + i, np.float32)) for i in range(50)])
    print(batch, flush=True)
    batch += 1
"""


def test_cache_survives_writers_killed_mid_loop(tmp_path):
    path = tmp_path / "cache.sqlite3"
    names = ["a", "b", "c"]
    procs = {
        n: subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER_LOOP), str(path), n],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in names
    }
    committed = {}
    try:
        for n, proc in procs.items():  # let each write a while (all three at once), then kill it mid-loop
            last = -1
            while last < 40:
                line = proc.stdout.readline()
                assert line, f"writer {n} died"
                last = int(line)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            printed = proc.stdout.read().split()  # what it reported before dying
            committed[n] = int(printed[-1]) if printed else last
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache = EmbeddingCache(path)
    total = 0
    for n, last in committed.items():
        for batch in range(last + 3):
            got = cache.get_many("m", [f"{n}-{batch}-{i}" for i in range(50)], 4)
            found = sum(v is not None for v in got)
            assert found in (0, 50), f"writer {n} batch {batch} is half there ({found}/50)"
            if batch <= last:  # reported as committed: must be there, with the right values
                assert found == 50
                assert [int(v[0]) for v in got] == [batch * 100 + i for i in range(50)]
            total += found
    assert cache.count() == total
    cache.put_many("m", [("after", np.ones(4, np.float32))])  # no lock was left behind
    assert cache.count() == total + 1


# ------------------------------------------------------------------------------ OpenAI: hangs, echoes


def test_a_server_that_never_answers_is_given_up_on_within_the_total_budget(tmp_path):
    # each answer would come after 30 s; the per-read timeout (60 s) alone would wait for all six
    with MockOpenAIServer(script=[30.0] * 6) as server:
        start = time.monotonic()
        with pytest.raises(RemoteServiceError, match=r"gave up after \d attempts? \(1\.5 s in all\)"):
            embedder(server.base_url, tmp_path, total_timeout=1.5, sleeps=None).embed(["cat"])
        elapsed = time.monotonic() - start
    assert elapsed < 1.5 + 5, f"took {elapsed:.1f} s"  # the budget, plus slack for a busy machine
    assert EmbeddingCache(tmp_path / "cache.sqlite3").count() == 0


def test_the_total_budget_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(tb.TOTAL_TIMEOUT_ENV, "7.5")
    assert embedder(closed_port_url(), tmp_path).total_timeout == 7.5
    monkeypatch.setenv(tb.TOTAL_TIMEOUT_ENV, "soon")
    assert embedder(closed_port_url(), tmp_path).total_timeout == tb.OPENAI_TOTAL_TIMEOUT_S


def test_words_page_gives_up_on_a_silent_server_and_offers_the_local_model(app_env, monkeypatch):
    with MockOpenAIServer(script=[30.0] * 6) as server:
        use_openai(monkeypatch, server.base_url)
        monkeypatch.setenv(tb.TOTAL_TIMEOUT_ENV, "1.5")
        start = time.monotonic()
        at = words_page()
        elapsed = time.monotonic() - start
    assert not at.exception and not has_heatmap(at)
    assert "did not answer" in errors(at) and "1.5 s in all" in errors(at)
    assert offers_local_model(at)
    assert elapsed < 30, f"the page took {elapsed:.1f} s"  # was about 6.4 minutes


def _key_spellings(key: str) -> list[str]:
    return [key, key.upper(), base64.b64encode(key.encode()).decode(), key[::-1]]


@pytest.mark.parametrize("status", [401, 404, 400, 500])
def test_an_error_body_that_echoes_the_key_in_any_spelling_is_never_shown(
    app_env, monkeypatch, caplog, status
):
    echo = lambda key: " / ".join(_key_spellings(key))  # noqa: E731
    caplog.set_level(logging.DEBUG)
    with MockOpenAIServer(script=[status] * 12, echo=echo) as server:
        with pytest.raises(EmbeddingsError) as info:
            embedder(server.base_url, app_env, max_attempts=2).embed(["cat"])
        use_openai(monkeypatch, server.base_url)
        monkeypatch.setenv(tb.TOTAL_TIMEOUT_ENV, "2")  # a 500 is retried: keep the page's retries short
        at = words_page()
    shown = "\n".join(
        [str(info.value), repr(info.value), errors(at), caplog.text]
        + [str(e.value) for e in (*at.info, *at.warning, *at.markdown, *at.caption)]
    )
    assert f"HTTP {status}" in str(info.value) and f"HTTP {status}" in errors(at)
    for spelling in _key_spellings(FAKE_KEY):
        assert spelling not in shown, spelling


def test_the_words_page_says_what_it_waits_for_and_the_way_out(monkeypatch):
    from ui.views.text import embedding_message

    monkeypatch.setenv(tb.TOTAL_TIMEOUT_ENV, "45")
    message = embedding_message(OPENAI, 9)
    assert "OpenAI" in message and "45 s" in message and "`local`" in message
    assert "OpenAI" not in embedding_message("hashing", 9)


def test_the_hugging_face_cache_is_asked_only_when_it_may_hold_the_model(tmp_path, monkeypatch):
    from embeddings.core.downloads import hf_cache_may_hold

    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert not hf_cache_may_hold("org/model")
    (tmp_path / "xdg" / "huggingface" / "hub" / "models--org--model").mkdir(parents=True)
    assert hf_cache_may_hold("org/model") and not hf_cache_may_hold("org/other")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "hub" / "models--org--other").mkdir(parents=True)
    assert hf_cache_may_hold("org/other")


def test_model_status_does_not_import_huggingface_hub_without_a_cache(tmp_path):
    code = (
        "import sys; from embeddings.models.clip import clip_status; from embeddings.models import minilm;"
        "clip_status(); assert minilm.minilm_hf_cache_dir() is None;"
        "print('huggingface_hub' in sys.modules)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "EMBEDDINGS_DATA_DIR": str(tmp_path / "data")}
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
