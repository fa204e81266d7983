"""Home: what each page does, which text model is active and why, how to add an OpenAI key."""

import streamlit as st

from ui.settings import current_text_settings, describe_text_model, openai_key_source
from ui.sidebar import KEY_HELP, no_key_note, require_router
from ui.views import links

require_router()

PAGE_CARDS = [
    (
        "pages/words.py",
        "Word similarity",
        ":material/compare_arrows:",
        "Type words or phrases and see how similar their embeddings are: a cosine-similarity "
        "heatmap, the most and least similar pairs, analogies like *king − man + woman*, the "
        "nearest words in a 20,000-word vocabulary, and two models compared side by side.",
    ),
    (
        "pages/tsne.py",
        "t-SNE map",
        ":material/scatter_plot:",
        "Lay groups of words out on a 2-D (or 3-D) map with t-SNE or PCA and see which "
        "meanings the model puts close together. The *Images* tab maps the whole image "
        "collection; click a point to see where its true neighbours landed.",
    ),
    (
        "pages/images.py",
        "Image search",
        ":material/image_search:",
        "Click a CIFAR-10 image (or upload your own) and see its nearest neighbours with "
        "cosine scores, how a vote of those neighbours classifies it (k-NN), and how well the "
        "model separates similar classes (cat vs dog).",
    ),
    (
        "pages/documents.py",
        "Semantic search",
        ":material/manage_search:",
        "Search 2,186 Python documentation texts (or your own CSV, JSONL, Markdown or text file) "
        "by meaning, not keywords: ranked documents with the passage that matched, and a map "
        "of the collection with your query on it.",
    ),
]


def render_intro() -> None:
    st.title("Embedding Explorer")
    links.restore("home")
    st.markdown(
        "An **embedding** turns a word, a sentence or an image into a list of numbers — a point "
        "in a space with hundreds of dimensions — so that things with similar meaning land close "
        "together. *Close* is measured by **cosine similarity**: 1 means the same direction, 0 "
        "unrelated, −1 opposite. Pick a page to explore."
    )


def render_pages() -> None:
    columns = st.columns(len(PAGE_CARDS), gap="medium")
    for column, (path, title, icon, text) in zip(columns, PAGE_CARDS, strict=True):
        with column.container(border=True, height="stretch"):
            st.page_link(path, label=title, icon=icon)
            st.markdown(text)


def render_text_model_status() -> None:
    st.subheader("Text model", divider="gray")
    text = current_text_settings()
    model = text.model_id
    st.markdown(f"Active: **`{model}`** — {text.reason}.")
    description = describe_text_model(model)
    if description:
        st.caption(description)
    source = openai_key_source()
    if source:
        st.success(
            f"OpenAI key: set (from {source}). The OpenAI models are available.", icon=":material/key:"
        )
    else:
        st.info(f"{no_key_note(model)}.", icon=":material/key_off:")
    with st.expander("How to add an OpenAI key"):
        st.markdown(KEY_HELP)
        st.code('# .streamlit/secrets.toml\nOPENAI_API_KEY = "sk-..."', language="toml")
        st.markdown(
            "Or in the shell: `export OPENAI_API_KEY=sk-...` before `streamlit run app.py`. "
            "The key is only sent to OpenAI; the app never shows or logs it."
        )


def render_tips() -> None:
    st.subheader("Good to know", divider="gray")
    st.markdown(
        "- Models differ in **scale**: one may put unrelated words at 0.1 and another at 0.4. "
        "Compare the *order* of similarities, not raw numbers across models.\n"
        "- `hashing` is a baseline that only sees spelling (*cat* ≈ *catch*): a yardstick for "
        "what meaning-aware models add.\n"
        "- Analogies and nearest words search a 20,000-word vocabulary. Each model embeds it "
        "once (a few minutes for the local model on a laptop), then it is saved on disk."
    )


# ------------------------------------------------------------------ image status
def render_image_status() -> None:
    """Image model (and why), collection, and the index's size and build date (or build progress)."""
    from embeddings.errors import EmbeddingsError
    from ui.cached import current_image_settings
    from ui.views.image import index_status_line
    from ui.views.text import details, plain, show_problem

    st.subheader("Images", divider="gray")
    try:
        settings = current_image_settings()
    except EmbeddingsError as exc:
        show_problem(exc, "Check the collection and image model in the sidebar.")
        return
    st.markdown(f"Image model: **`{settings.model_id}`** — {plain(settings.model_reason)}.")
    details(settings.model_reason)
    st.markdown(
        f"Collection: **{settings.source}** ({settings.split} split); inference in **{settings.precision}**."
    )
    index_status_line(settings)


render_intro()
render_pages()
left, right = st.columns(2, gap="large")
with left:
    render_text_model_status()
with right:
    render_image_status()
    render_tips()
