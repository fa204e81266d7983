"""The app shell: every page renders, the shared sidebar, the OpenAI key status (never the key)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import embeddings.config
from embeddings.models.baselines import HashingTextEmbedder

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["pages/home.py", "pages/words.py", "pages/tsne.py", "pages/images.py"]
TIMEOUT = 60


def run_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def all_text(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "success", "warning", "error", "title", "subheader", "code"):
        parts += [str(el.value) for el in at.get(kind)]
    parts += [str(sb.value) for sb in at.selectbox]
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app_env, page):
    at = run_app()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title, "each page has a title"


def test_home_names_model_and_reason(app_env):
    at = run_app()
    text = all_text(at)
    assert "Embedding Explorer" in text
    assert "`hashing`" in text and "EMBEDDINGS_TEXT_MODEL" in text
    assert "OpenAI key: not set" in text
    assert "secrets.toml" in text and "OPENAI_API_KEY" in text  # how to add a key


def test_key_is_never_shown(app_env, monkeypatch):
    secret = "sk-test-THISMUSTNOTAPPEAR1234"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    at = run_app()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception
        assert secret not in all_text(at)
        assert "THISMUSTNOTAPPEAR" not in str(at.session_state.to_dict())
    at.switch_page("pages/home.py").run()
    assert "OpenAI key: set (from environment)" in all_text(at)


def test_key_from_secrets_file(app_env, monkeypatch):
    secrets = app_env / "secrets.toml"
    secrets.write_text('OPENAI_API_KEY = "sk-from-file-XYZ"\n')
    monkeypatch.setattr(embeddings.config, "SECRETS_FILE", secrets)
    at = run_app()
    text = all_text(at)
    assert "OpenAI key: set (from secrets.toml)" in text
    assert "sk-from-file-XYZ" not in text


def test_sidebar_model_is_shared_across_pages(app_env, add_model):
    add_model("test-bigrams", lambda: HashingTextEmbedder(dim=256, n=2))
    at = run_app()
    assert at.session_state["text_model"] == "hashing"
    at.selectbox(key="text_model").set_value("test-bigrams").run()
    at.switch_page("pages/words.py").run()
    assert at.session_state["text_model"] == "test-bigrams"
    assert "test-bigrams" in all_text(at)
    at.switch_page("pages/tsne.py").run()
    assert at.session_state["text_model"] == "test-bigrams"
    assert not at.exception


def test_unknown_env_model_falls_back(app_env, monkeypatch):
    monkeypatch.setenv("EMBEDDINGS_TEXT_MODEL", "no-such-model")
    at = run_app()
    assert not at.exception
    assert any("no-such-model" in w.value for w in at.sidebar.warning)
    assert at.session_state["text_model"] == "local"  # no key: the offline default


# ---------------------------------------------------------------------------- image jobs on Home

import threading  # noqa: E402

from embeddings.models.baselines import PixelImageEmbedder  # noqa: E402
from tests.conftest import wait_for_jobs  # noqa: E402


def test_home_with_an_unavailable_model_says_why_and_starts_no_job(app_env, add_model, monkeypatch):
    from ui.cached import job_runner

    built = []

    class Missing(PixelImageEmbedder):
        model_id = "test-missing"

        def __init__(self):
            built.append(1)
            super().__init__()

    add_model("test-missing", Missing, kind="image", status=lambda **_: (False, "weights not downloaded"))
    monkeypatch.setenv("EMBEDDINGS_IMAGE_MODEL", "test-missing")
    at = run_app()
    for _ in range(3):  # every rerun asks again: still nothing starts
        at.run()
    assert not at.exception, at.exception
    text = all_text(at)
    assert "**test-missing** can't be used on this machine yet" in text
    assert "efficientnet_lite0" in text and "Download" in text  # what to do
    assert "weights not downloaded" in text  # the reason, in Details
    assert not at.get("progress"), "no build is started for a model that cannot load"
    assert built == [], "the model was never loaded"
    assert all("test-missing" not in key for key in job_runner()._jobs)


def test_a_job_is_cancelled_from_the_page_and_started_again(app_env, add_model, monkeypatch):
    entered, release = threading.Event(), threading.Event()

    class Slow(PixelImageEmbedder):
        model_id = "test-slow"

        def embed_batch(self, batch):
            entered.set()
            assert release.wait(60)
            return super().embed_batch(batch)

    add_model("test-slow", Slow, kind="image")
    monkeypatch.setenv("EMBEDDINGS_IMAGE_MODEL", "test-slow")
    try:
        at = run_app()
        assert not at.exception, at.exception
        assert at.get("progress"), "the build shows its bar"
        assert entered.wait(60), "the build is running"
        cancel = [b for b in at.button if str(b.key).startswith("cancel:index:")]
        assert len(cancel) == 1 and cancel[0].label == "Cancel"
        cancel[0].click().run()
    finally:
        release.set()  # the worker goes on to its next progress report, which stops it
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception, at.exception
    assert not at.get("progress")
    text = all_text(at)
    assert "Building the index was cancelled" in text
    again = at.button(key="home_retry")
    assert again.label == "Start again"
    entered.clear()
    again.click().run()
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception, at.exception
    assert "Index: 2,000 images" in all_text(at)
