"""The background job's progress text: images/s and time left, from the progress reports."""

from ui import jobs


def test_job_reports_rate_and_time_left(monkeypatch):
    clock = iter([110.0, 130.0])
    monkeypatch.setattr(jobs.time, "monotonic", lambda: next(clock))
    job = jobs.Job(key="k", label="Embedding test")
    assert job.rate is None and job.status_text() == "Embedding test"
    job.progress(64, 10_000)  # t = 110: the rate starts here (model loading is not work)
    assert job.rate is None and job.seconds_left is None
    assert job.status_text() == "Embedding test · 64 / 10,000"
    job.progress(2_064, 10_000)  # t = 130: 2,000 images in 20 s
    assert job.rate == 100.0 and abs(job.seconds_left - 79.36) < 1e-9
    assert job.status_text() == "Embedding test · 2,064 / 10,000 · 100 img/s · about 79 s left"
    job.done, job.total = 2_064, 100_000
    assert job.status_text().endswith("about 16 min left")


# ---------------------------------------------------------------------------- the runner

import threading  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from embeddings.errors import ModelUnavailableError, WorkCancelledError  # noqa: E402

WAIT = 60  # generous bound on every wait: the tests wait on events, never on time


def wait_until_done(job):
    """Block until ``job`` ended (polling an event-free state with a generous bound)."""
    ended = threading.Event()
    for _ in range(WAIT * 100):
        if not job.active:
            ended.set()
            break
        ended.wait(0.01)
    assert ended.is_set(), f"{job.label} still {job.state}"


def blocking(started: threading.Event, release: threading.Event, steps: int = 0):
    """A job body that reports progress, then waits for ``release`` (reporting again after it)."""

    def fn(progress):
        progress(0, 10)
        started.set()
        assert release.wait(WAIT)
        for done in range(1, steps + 1):
            progress(done, 10)
        return "ok"

    return fn


def test_queued_job_says_what_it_waits_behind_and_can_be_dropped():
    runner = jobs.JobRunner(workers=1)
    started, release = threading.Event(), threading.Event()
    first = runner.submit("a", "Embedding cifar10 (test)", blocking(started, release))
    assert started.wait(WAIT)
    ran = []
    second = runner.submit("b", "Embedding sample (test)", lambda progress: ran.append(1))
    assert first.state == "running" and second.state == "queued"
    assert runner.ahead_of(second) == [first] and runner.ahead_of(first) == []
    assert runner.cancel("b") is second and second.state == "cancelled"  # dropped at once
    release.set()
    wait_until_done(first)
    third = runner.submit("c", "after", lambda progress: "done")
    wait_until_done(third)
    assert first.state == "finished" and third.result == "done"
    assert ran == [] and second.state == "cancelled"  # the dropped job never ran


def test_an_analysis_does_not_wait_behind_a_build():
    runner = jobs.JobRunner(workers=1)
    started, release = threading.Event(), threading.Event()
    build = runner.submit("build", "Embedding 2,186 documents", blocking(started, release))
    assert started.wait(WAIT)
    queued_build = runner.submit("build2", "Embedding sample (test)", lambda progress: "built")
    analysis = runner.submit("knn", "Classifying 2,000 items", lambda progress: "classified", lane="analysis")
    wait_until_done(analysis)  # finished while the build still runs
    assert analysis.result == "classified" and build.state == "running" and queued_build.state == "queued"
    assert runner.ahead_of(queued_build) == [build] and runner.ahead_of(analysis) == []
    release.set()
    wait_until_done(queued_build)
    assert queued_build.result == "built"
    with pytest.raises(ValueError, match="valid lanes are build, analysis"):
        runner.submit("x", "x", lambda progress: None, lane="gpu")


def test_running_job_stops_at_its_next_progress_report():
    runner = jobs.JobRunner(workers=1)
    started, release = threading.Event(), threading.Event()
    job = runner.submit("a", "Embedding", blocking(started, release, steps=5))
    assert started.wait(WAIT)
    assert runner.cancel("a") is job and job.state == "running"  # it stops at its next report
    release.set()
    wait_until_done(job)
    assert job.state == "cancelled" and isinstance(job.error, WorkCancelledError)
    assert job.done == 0  # the report after the cancel raised instead of counting
    assert runner.submit("a", "Embedding", lambda progress: "again") is job  # not restarted by itself
    runner.retry("a")
    again = runner.submit("a", "Embedding", lambda progress: "again")
    wait_until_done(again)
    assert again is not job and again.result == "again"


def test_failure_is_kept_once_and_not_retried_until_retry(caplog):
    runner = jobs.JobRunner(workers=1)
    calls = []

    def fails(progress):
        calls.append(1)
        raise ModelUnavailableError("ResNet18's weights are not on this machine")

    with caplog.at_level("INFO", logger="streamlit.ui.jobs"):
        job = runner.submit("a", "Embedding sample (test) with resnet18", fails)
        wait_until_done(job)
        for _ in range(5):  # every rerun of a page asks again
            assert runner.submit("a", "Embedding sample (test) with resnet18", fails) is job
    assert job.state == "failed" and job.stopped and calls == [1]
    lines = [r for r in caplog.records if r.name == "streamlit.ui.jobs"]
    assert len(lines) == 1 and "weights are not on this machine" in lines[0].getMessage()
    assert lines[0].exc_info is None  # one line, no traceback
    runner.retry("a")
    second = runner.submit("a", "Embedding sample (test) with resnet18", fails)
    wait_until_done(second)
    assert second is not job and calls == [1, 1]


def test_cancel_of_an_ended_job_does_nothing():
    runner = jobs.JobRunner(workers=1)
    job = runner.submit("a", "quick", lambda progress: 1)
    wait_until_done(job)
    assert runner.cancel("a") is None and job.state == "finished"
    assert runner.cancel("nothing") is None


def test_step_job_reads_as_steps():
    job = jobs.Job(key="m", label="Laying out the map of 2,000 images (t-SNE)", unit="step")
    job.state = "running"
    job.progress(325, 500)
    assert job.status_text() == "Laying out the map of 2,000 images (t-SNE), step 325 of 500"
    assert "img/s" not in job.status_text()


def test_map_progress_is_monotonic_over_both_tsne_phases():
    from embeddings.core.projection import fast_tsne

    seen = []
    vectors = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32)
    fast_tsne(vectors, perplexity=10, progress=lambda done, total: seen.append((done, total)))
    counts = [done for done, _ in seen]
    assert counts == sorted(counts) and counts[-1] == 500 and {t for _, t in seen} == {500}
    assert len(set(counts)) > 10  # both phases counted, not one phase twice


def test_cancelled_index_build_leaves_no_index(tmp_path):
    cancel_after = 1
    """A build stopped from its progress callback writes nothing: no index, no temp folder."""
    from embeddings.errors import IndexNotBuiltError
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.index.store import load_index
    from embeddings.models.baselines import PixelImageEmbedder

    collection = open_collection("sample", "test")
    embedder = PixelImageEmbedder()
    reports = []

    def progress(done, total):
        reports.append(done)
        if len(reports) > cancel_after:
            raise WorkCancelledError("cancelled")

    with pytest.raises(WorkCancelledError):
        get_or_build_index(collection, embedder, tmp_path, progress)
    with pytest.raises(IndexNotBuiltError):
        load_index(collection, embedder, tmp_path)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith((".tmp", ".old"))]
    assert leftovers == []
