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
