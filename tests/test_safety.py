"""Safety: the OpenAI key never leaks, nothing a user can influence is unpickled, paths come from
configuration only, uploads stay in memory, XSRF protection and the upload limit stay on.

The key checks run the app with ``OPENAI_API_KEY`` set to a recognisable fake secret and the
OpenAI client pointed (``OPENAI_BASE_URL``) at a local mock server whose 401 answer echoes the
key back, as OpenAI's does: the secret must then appear in no rendered element, no log line, no
output and no file under the data folder (the SQLite cache included). Under ``AppTest`` this
runs by default; against a real ``streamlit run`` server and chromium it is marked slow.
"""

from __future__ import annotations

import ast
import inspect
import io
import logging
import os
import tempfile
import time
import tomllib
import uuid
from pathlib import Path

import pytest
from image_fixtures import make_class_folder, rgb
from openai_server import MockOpenAIServer
from PIL import Image, PngImagePlugin
from streamlit.testing.v1 import AppTest

import embeddings.config
import embeddings.image.cifar
import embeddings.image.collections
from tests.conftest import wait_for_jobs

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
TIMEOUT = 90
pytestmark = pytest.mark.app_env(data="data", fresh_caches=True)  # a data folder apart from tmp_path's files
SOURCES = sorted(
    [*(REPO / "embeddings").rglob("*.py"), *(REPO / "ui").rglob("*.py"), *(REPO / "pages").rglob("*.py")]
) + [REPO / "app.py"]
TEXT_BOXES = {
    "words_input",
    "analogy_a",
    "analogy_b",
    "analogy_c",
    "tsne_groups",
    "image_text_query",
    "docs_query",
}  # none takes a path
TEXT_BOX_HELPERS = ("word_box",)  # ui.views.text: draws a text box with the key its caller passes


def canary() -> str:
    return f"sk-proj-SAFETYCANARY{uuid.uuid4().hex}"


def leaks(secret: str, text: str | bytes) -> bool:
    """Whether ``text`` holds the secret, or its distinctive middle (a partly masked copy)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return secret in text or secret[8:28] in text


def files_holding(secret: str, folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and leaks(secret, p.read_bytes())]


def snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and p.name not in skip
    }


def tree_text(at: AppTest) -> str:
    """Every element the app rendered (protobufs, so labels, captions, help and values too)."""
    out = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def marked_png(marker: str) -> bytes:
    """A small PNG carrying ``marker`` in a text chunk (to look for copies of the upload on disk)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", marker)
    buffer = io.BytesIO()
    Image.fromarray(rgb(40, 40)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def recent_files_holding(marker: bytes, folder: Path, since: float, exclude: Path | None = None) -> list[str]:
    found = []
    for root, _, names in os.walk(folder):
        if exclude is not None and Path(root).is_relative_to(exclude):
            continue
        for name in names:
            path = Path(root) / name
            try:
                stat = path.stat()
                if stat.st_mtime >= since and stat.st_size < 50_000_000 and marker in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def settle(at: AppTest) -> AppTest:
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


# ------------------------------------------------------------------------------ the key


def test_key_never_rendered_logged_or_written(app_env, monkeypatch, capfd):
    secret = canary()
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    watched = [logging.getLogger(), *(logging.getLogger(n) for n in ("openai", "httpx2", "httpx", "ui"))]
    levels = [lg.level for lg in watched]
    for lg in watched:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    rendered = []
    try:
        with MockOpenAIServer(script=[401, 500, 429]) as server:
            monkeypatch.setenv("OPENAI_API_KEY", secret)
            monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
            monkeypatch.setenv("EMBEDDINGS_TEXT_MODEL", "openai:text-embedding-3-small")
            at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
            rendered.append(tree_text(at))
            at.switch_page("pages/words.py").run()  # 401: rejected, with the key echoed by the server
            assert "rejected the key" in "\n".join(e.value for e in at.error)
            rendered.append(tree_text(at))
            at.text_area(key="words_input").set_value("sun, moon, star").run()  # 500, 429, then fine
            assert not at.error and any(c.key == "words_heatmap" for c in at.get("plotly_chart"))
            rendered.append(tree_text(at))
            at.switch_page("pages/tsne.py").run()
            rendered.append(tree_text(at))
            at.switch_page("pages/images.py").run()
            rendered.append(tree_text(settle(at)))
            at.switch_page("pages/home.py").run()
            rendered.append(tree_text(at))
            session = str(at.session_state.to_dict())
            assert all(r["authorization"] == f"Bearer {secret}" for r in server.requests)  # it was used
            assert len(server.requests) >= 4
    finally:
        for lg, level in zip(watched, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    out, err = capfd.readouterr()
    assert "OpenAI key: set (from environment)" in rendered[-1]
    assert not any(leaks(secret, text) for text in rendered), "the key was rendered"
    assert not leaks(secret, session), "the key is in the session state"
    assert records and not any(leaks(secret, r) for r in records), "the key was logged"
    assert not leaks(secret, out + err), "the key was printed"
    assert (app_env / "embedding_cache.sqlite3").is_file()
    assert files_holding(secret, app_env) == [], "the key was written to the data folder"


def test_key_from_secrets_toml_is_not_rendered_either(app_env, monkeypatch, tmp_path):
    secret = canary()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'OPENAI_API_KEY = "{secret}"\n')
    monkeypatch.setattr(embeddings.config, "SECRETS_FILE", secrets)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    text = tree_text(at)
    assert "OpenAI key: set (from secrets.toml)" in text and not leaks(secret, text)


# ------------------------------------------------------------------------------ pickles


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expr>"
    return "<absent>"


def test_nothing_is_unpickled():
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names]
                bad = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
                if bad & {n.split(".")[0] for n in names}:
                    problems.append(f"{where}:{node.lineno} imports {names}")
        for call, func in calls(tree):
            line = f"{where}:{call.lineno} {func}(...)"
            if keyword(call, "allow_pickle") not in (False, "<absent>"):
                problems.append(f"{line} with allow_pickle={keyword(call, 'allow_pickle')}")
            if keyword(call, "weights_only") not in (True, "<absent>"):
                problems.append(f"{line} with weights_only={keyword(call, 'weights_only')}")
            if func.endswith("torch.load") and keyword(call, "weights_only") is not True:
                problems.append(f"{line} without weights_only=True")
            if func.endswith(("read_pickle", "jit.load", "pickle.load", "pickle.loads", "Unpickler")):
                problems.append(line)
            if func.endswith("cache_data") and keyword(call, "persist") not in (None, False, "<absent>"):
                problems.append(f"{line}: st.cache_data pickles to disk with persist")
    assert problems == []


def test_np_load_calls_say_allow_pickle_false():
    loads = [
        (path.relative_to(REPO), call.lineno, keyword(call, "allow_pickle"))
        for path in SOURCES
        for call, func in calls(ast.parse(path.read_text()))
        if func in ("np.load", "numpy.load")
    ]
    assert loads, "expected some np.load calls to check"
    assert [x for x in loads if x[2] is not False] == []


def test_the_cifar10_archive_is_unpickled_only_after_its_checksums():
    """The one pickle read: torchvision's CIFAR10 on the official archive, md5-checked first."""
    from torchvision.datasets import CIFAR10

    source = inspect.getsource(embeddings.image.cifar)
    readers = [call for call, func in calls(ast.parse(source)) if func.split(".")[-1] == "CIFAR10"]
    assert len(readers) == 1 and keyword(readers[0], "download") is False  # only files already checked
    assert 'expected=("md5", CIFAR10_MD5)' in source  # the archive is checked as it is downloaded
    init = inspect.getsource(CIFAR10.__init__)
    assert init.index("_check_integrity") < init.index("pickle.load")  # each batch file's md5
    # behaviour: tests/test_datasets.py::test_cifar10_corrupt_batch_is_refused_before_unpickling


# ------------------------------------------------------------------------------ paths and uploads


def text_box_keys() -> set[str]:
    keys = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        helper_calls = {  # a helper's own text box takes the key its caller passes: the call is counted
            id(node)
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef) and f.name in TEXT_BOX_HELPERS
            for node in ast.walk(f)
        }
        for call, func in calls(tree):
            if id(call) in helper_calls:
                continue
            if func.split(".")[-1] in ("text_input", "text_area", "chat_input", *TEXT_BOX_HELPERS):
                key = keyword(call, "key")
                keys.add(key if isinstance(key, str) else f"{path.name}:{call.lineno}")
    return keys


def test_folders_come_from_configuration_not_the_page(app_env, monkeypatch, tmp_path):
    assert text_box_keys() == TEXT_BOXES  # a new text box must be added here, and must not take a path
    folder = make_class_folder(tmp_path / "private-images")
    opened = []
    for name in ("open_collection", "list_splits", "source_fingerprint"):
        real = getattr(embeddings.image.collections, name)
        monkeypatch.setattr(
            embeddings.image.collections,
            name,
            lambda src, *a, _real=real, **k: opened.append(str(src)) or _real(src, *a, **k),
        )
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for page, keys in [("pages/words.py", ["words_input"]), ("pages/tsne.py", ["tsne_groups"])]:
        at.switch_page(page).run()
        for key in keys:
            at.text_area(key=key).set_value(str(folder)).run()
    at.switch_page("pages/words.py").run()
    at.session_state["words_tab"] = "Analogy"
    at.run()
    for key in ("analogy_a", "analogy_b", "analogy_c"):
        at.text_input(key=key).set_value(f"{folder}/{key}")
    at.button[0].click().run()
    assert not at.exception and {w.key for w in [*at.text_input, *at.text_area]} <= TEXT_BOXES
    forged = AppTest.from_file(APP, default_timeout=TIMEOUT)
    forged.session_state["collection"] = str(folder)  # forged session state is not a way in either
    forged.run()
    forged.switch_page("pages/images.py").run()
    settle(forged)
    assert forged.session_state["collection"] == "sample"
    assert opened and str(folder) not in " ".join(opened), opened

    monkeypatch.setenv("EMBEDDINGS_FOLDERS", str(folder))  # configured: now it is offered
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert "Folder: private-images" in at.sidebar.selectbox(key="collection").options


def test_uploads_stay_in_memory(app_env, tmp_path):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/images.py").run()
    settle(at)
    before = snapshot(app_env)
    marker = f"UPLOADMARKER{uuid.uuid4().hex}"
    started = time.time() - 1
    at.file_uploader(key="image_upload").set_value(("mine.png", marked_png(marker), "image/png")).run()
    assert not at.exception and not at.error
    assert "Top 10 neighbours" in "\n".join(s.value for s in at.subheader)
    assert snapshot(app_env) == before  # nothing written, nothing changed
    assert recent_files_holding(marker.encode(), app_env, started) == []
    assert recent_files_holding(marker.encode(), Path(tempfile.gettempdir()), started, exclude=tmp_path) == []


def test_xsrf_protection_and_upload_limit_are_configured():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert 1 <= config["server"]["maxUploadSize"] <= 10
    for path in [REPO / "Makefile", *REPO.glob(".ci/*"), *REPO.glob("*.sh")]:  # not switched off at launch
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "enableXsrfProtection false" not in text and "enableXsrfProtection=false" not in text
            assert "maxUploadSize" not in text, f"{path} overrides the upload limit"


# ------------------------------------------------------------------------------ a real server


@pytest.mark.slow
@pytest.mark.browser
def test_real_server_key_xsrf_upload_limit(browser, tmp_path):
    from tests.browser_support import assert_no_exception, goto_page, streamlit_server, wait_for_app

    secret = canary()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    marker = f"UPLOADMARKER{uuid.uuid4().hex}"
    upload_file = tmp_path / "mine.png"
    upload_file.write_bytes(marked_png(marker))
    big_file = tmp_path / "big.png"
    big_file.write_bytes(os.urandom(11 * 1024 * 1024))
    with MockOpenAIServer(script=[401]) as server:
        env = {
            "OPENAI_API_KEY": secret,
            "OPENAI_BASE_URL": server.base_url,
            "EMBEDDINGS_IMAGE_MODEL": "pixels",
            "EMBEDDINGS_COLLECTION": "sample",
        }
        with streamlit_server(data_dir, "openai:text-embedding-3-small", env) as url:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.set_default_timeout(240_000)
            puts = []
            page.on("request", lambda r: puts.append(r) if r.method == "PUT" else None)
            contents = []
            goto_page(page, url)
            contents.append(page.content())
            goto_page(page, url, "words")  # the 401, with the key echoed by the mock server
            page.get_by_text("OpenAI rejected the key").first.wait_for(state="visible")
            contents.append(page.content())
            box = page.get_by_role("textbox", name="Words or phrases, separated by commas or new lines")
            box.fill("sun, moon, star")
            box.press("Control+Enter")
            wait_for_app(page, expect_rerun=True)
            page.locator("[data-testid='stPlotlyChart']").first.wait_for(state="visible")
            contents.append(page.content())
            goto_page(page, url, "images")
            page.locator("[data-testid='stPlotlyChart']").first.wait_for(state="visible")
            wait_for_app(page)
            before = snapshot(data_dir, skip=("streamlit.log",))
            started = time.time() - 1
            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(upload_file))
            page.get_by_text("Your image: mine.png").first.wait_for(state="visible")
            wait_for_app(page)
            assert_no_exception(page)
            contents.append(page.content())
            after = snapshot(data_dir, skip=("streamlit.log",))

            (upload,) = [r for r in puts if "/_stcore/upload_file/" in r.url]
            token = upload.headers.get("x-xsrftoken")
            assert token, "the browser sent the upload with an XSRF token"
            payload = {"name": "mine.png", "mimeType": "image/png", "buffer": upload_file.read_bytes()}
            no_token = page.request.put(upload.url, multipart={"file": payload})
            assert no_token.status == 403  # XSRF protection is on in the running server
            too_big = page.request.put(
                upload.url,
                headers={"X-Xsrftoken": token},
                multipart={
                    "file": {"name": "big.png", "mimeType": "image/png", "buffer": big_file.read_bytes()}
                },
            )
            assert too_big.status == 413  # server.maxUploadSize is enforced
            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(big_file))
            page.get_by_text("or smaller").first.wait_for(state="visible")  # refused in the browser too
            context.close()
        assert all(r["authorization"] == f"Bearer {secret}" for r in server.requests) and server.requests
    log = (data_dir / "streamlit.log").read_text(errors="replace")
    assert "loaded text model openai:text-embedding-3-small" in log
    assert not any(leaks(secret, c) for c in contents), "the key was rendered"
    assert not leaks(secret, log), "the key is in the server log"
    assert files_holding(secret, data_dir) == [], "the key was written to the data folder"
    assert after == before, "the upload changed the data folder"
    assert recent_files_holding(marker.encode(), data_dir, started) == []
    assert recent_files_holding(marker.encode(), Path(tempfile.gettempdir()), started, exclude=tmp_path) == []


# ------------------------------------------------------------------------------ user text is shown as text

NASTY = ["**bold**", "$x^2$", "[a](http://127.0.0.1:9/x)", "![i](http://127.0.0.1:9/i.png)", "<img src=x>"]
RAW = ("**bold**", "$x^2$", "](http", "![", "<img")  # live syntax; escaped, each has a backslash inside


def rendered_markdown(at: AppTest) -> list[str]:
    """The Markdown source of every element Streamlit renders as Markdown (labels and values too)."""
    out = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title"):
        out += [str(e.value) for e in at.get(kind)]
    for metric in at.get("metric"):
        out += [str(metric.label), str(metric.value)]
    return out


def assert_shown_as_text(values: list[str]) -> None:
    for value in values:
        for raw in RAW:
            assert raw not in value.replace("\\<", "\\&lt;"), (raw, value)  # an escaped < is text


def test_escape_markdown_leaves_no_live_syntax():
    from embeddings.text.wordlists import escape_markdown

    escaped = [escape_markdown(word) for word in NASTY + ["a\n# heading", ":red[x] :material/home:"]]
    assert_shown_as_text(escaped)
    assert escaped[0] == r"\*\*bold\*\*" and "\n" not in escaped[5] and ":red[" not in escaped[6]


def test_typed_words_are_shown_as_text_not_markdown(app_env, monkeypatch):
    monkeypatch.setenv("EMBEDDINGS_TEXT_MODEL", "hashing")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/words.py").run()
    at.session_state["words_tab"] = "Analogy"
    at.run()
    for key, word in zip(("analogy_a", "analogy_b", "analogy_c"), NASTY, strict=False):
        at.text_input(key=key).set_value(word)
    at.button[0].click().run() if at.button else at.run()
    assert not at.exception
    metrics = at.get("metric")
    assert metrics, "the analogy showed no result"
    assert r"\*\*bold\*\*" in metrics[0].label and r"\$x^2\$".replace("^", r"\^") in metrics[0].label
    assert_shown_as_text(rendered_markdown(at))
    at.switch_page("pages/tsne.py").run()
    groups = "\n".join(f"g{i}: {word}, w{i}" for i, word in enumerate(NASTY)) + "\nagain: " + ", ".join(NASTY)
    at.text_area(key="tsne_groups").set_value(groups).run()
    assert not at.exception
    notes = [c.value for c in at.caption if "appears twice" in c.value]
    assert len(notes) == 5, notes  # every repeated word is named, escaped
    assert_shown_as_text(rendered_markdown(at))


def test_upload_names_and_class_folder_names_are_shown_as_text(app_env, monkeypatch, tmp_path):
    """A file name or class-folder name with Markdown in it (an image link would make the browser
    fetch the URL) is shown as text on the image page."""
    classes = ["**bold**", "$x^2$", "<img src=x>", "![i](http:127.0.0.1:9)"]  # no "/" in a folder name
    folder = make_class_folder(tmp_path / "nasty", classes=classes, per_class=4)
    monkeypatch.setenv("EMBEDDINGS_FOLDERS", str(folder))
    monkeypatch.setenv("EMBEDDINGS_COLLECTION", str(folder))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/images.py").run()
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    at.session_state["image_query"] = ("id", 0)  # a click on the first image: its class in the captions
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    buf = io.BytesIO()
    Image.fromarray(rgb(16, 16)).save(buf, format="PNG")
    name = "![i](http://127.0.0.1:9/i.png) **me**.png"
    at.file_uploader(key="image_upload").set_value((name, buf.getvalue(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs if img.caption]
    assert any("me" in c for c in captions), captions  # the upload's caption is there ...
    assert_shown_as_text(rendered_markdown(at) + captions)  # ... and nothing in it, or elsewhere, is live
