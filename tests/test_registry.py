"""The model registry: specs on top, saved models discovered once per data folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from embeddings import registry
from embeddings.adapt.heads import get_or_fit_head
from embeddings.errors import UnknownModelError
from embeddings.index.service import get_or_build_index
from embeddings.models.baselines import HashingTextEmbedder
from tests.conftest import ArrayCollection, make_colour_images

TOUCHED: list[str] = []
WATCHING: list[str] = []  # the folder whose accesses are recorded, while a test watches


def _audit(event: str, args) -> None:
    if WATCHING and event in ("open", "os.scandir", "os.listdir", "glob.glob"):
        path = args[0] if args else None
        if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).startswith(WATCHING[0]):
            TOUCHED.append(f"{event} {os.fsdecode(path)}")


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only records while WATCHING


@pytest.fixture
def saved_head(tmp_path, monkeypatch, pixel_embedder):
    """A data folder holding one fitted pixels head; returns (data folder, head model id)."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(data_dir))
    images, labels = make_colour_images(per_class=12)
    train = ArrayCollection(images, labels, ["red", "green", "blue"], split="train")
    index, _ = get_or_build_index(train, pixel_embedder, data_dir)
    head, _ = get_or_fit_head(index, pixel_embedder, "lda", data_dir)
    return data_dir, f"pixels-lda-{head.fingerprint[:8]}"


def test_after_the_first_discovery_lookups_do_not_touch_the_data_folder(saved_head, monkeypatch):
    data_dir, head_id = saved_head
    registry.refresh_saved_models(data_dir)  # the first discovery reads the folder
    real_stat = os.stat

    def watched_stat(path, *args, **kwargs):
        if os.fsdecode(path).startswith(str(data_dir)):
            TOUCHED.append(f"stat {os.fsdecode(path)}")
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", watched_stat)
    TOUCHED.clear()
    WATCHING[:] = [str(data_dir)]
    try:
        assert head_id in registry.image_model_ids(data_dir)
        assert registry.spec(head_id, data_dir=data_dir).parts == ("pixels",)
        assert registry.joint_text_model(head_id, data_dir) is None
        assert registry.joint_text_model("clip", data_dir) == "clip-text"
        assert "projection head" in registry.describe(head_id, data_dir)
        registry.get_image_embedder("pixels", data_dir)
        registry.get_text_embedder("hashing")
    finally:
        WATCHING.clear()
    assert TOUCHED == []
    # building the head's embedder reads its own files, as it must
    assert registry.get_image_embedder(head_id, data_dir).model_id == head_id


def test_a_new_head_is_found_after_an_explicit_refresh_or_a_listing_change(
    tmp_path, monkeypatch, pixel_embedder
):
    data_dir = tmp_path / "data"
    registry.refresh_saved_models(data_dir)
    assert not registry.refresh_if_changed(data_dir)  # nothing changed: no re-discovery
    images, labels = make_colour_images(per_class=12)
    index, _ = get_or_build_index(ArrayCollection(images, labels, ["r", "g", "b"]), pixel_embedder, data_dir)
    head, _ = get_or_fit_head(index, pixel_embedder, "lda", data_dir)
    head_id = f"pixels-lda-{head.fingerprint[:8]}"
    assert head_id not in registry.image_model_ids(data_dir)  # lookups do not re-read the folder
    assert registry.refresh_if_changed(data_dir)  # heads/ changed: found
    assert head_id in registry.image_model_ids(data_dir)


def test_an_unknown_id_is_looked_for_once_more_then_lists_the_valid_ids(saved_head):
    data_dir, head_id = saved_head
    registry.refresh_saved_models(tmp := data_dir / "elsewhere")  # another folder's cache
    assert head_id not in registry.image_model_ids(tmp)
    assert registry.get_image_embedder(head_id, data_dir).model_id == head_id  # found on a miss
    with pytest.raises(UnknownModelError) as info:
        registry.get_image_embedder("vgg99", data_dir)
    assert "vgg99" in str(info.value) and "pixels" in str(info.value) and head_id in str(info.value)
    with pytest.raises(UnknownModelError, match="unknown text model 'pixels'"):
        registry.get_text_embedder("pixels")


def test_specs_answer_without_importing_the_model_modules():
    code = textwrap.dedent(
        """
        import sys
        from embeddings import registry
        facts = [registry.describe(m) for m in registry.text_model_ids()]
        assert registry.needs_key("openai:text-embedding-3-small") and not registry.needs_key("local")
        assert registry.max_chars("openai:text-embedding-3-large") == 8000
        assert registry.joint_text_model("clip") == "clip-text"
        loaded = sorted(m for m in sys.modules if m.startswith("embeddings.models.") or m in ("torch", "open_clip"))
        print(loaded)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_parts_are_built_first_and_handed_to_the_factory(add_model):
    seen = []

    def pair(a, b, scale=1):
        seen.append((a.model_id, b.model_id, scale))
        return HashingTextEmbedder(dim=a.dim + b.dim)

    add_model("test-pair", pair, parts=("hashing", "hashing"), kwargs={"scale": 2}, description="two halves")
    embedder = registry.get_text_embedder("test-pair")
    assert seen == [("hashing", "hashing", 2)] and embedder.dim == 1024
    assert embedder.description == "two halves"  # from its spec: one place for model facts


def test_register_returns_what_it_replaced_and_unregister_restores_it():
    builtin = registry.spec("hashing")
    replaced = registry.register(registry.ModelSpec("hashing", registry.TEXT, HashingTextEmbedder, "mine"))
    try:
        assert replaced is builtin and registry.describe("hashing") == "mine"
    finally:
        registry.unregister("hashing", restore=replaced)
    assert registry.spec("hashing") is builtin
