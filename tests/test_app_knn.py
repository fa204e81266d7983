"""k-NN on the image search page under AppTest (the instant ``pixels`` model on the bundled sample):
the query's predicted label with its vote, and the leave-one-out accuracy curve with its table."""

import re

import pytest

from tests.conftest import assert_clean, wait_for_jobs
from tests.test_app_images import TIMEOUT, open_ready, text_of

pytestmark = pytest.mark.app_env(shared_data="knn-sample-index")


def test_query_shows_its_knn_prediction_and_vote(app_env):
    at = open_ready("pages/images.py")
    at.session_state["image_query"] = ("id", 7)
    at.run()
    assert_clean(at)
    line = next(m.value for m in at.markdown if m.value.startswith("**k-NN prediction"))
    match = re.search(
        r"\(k=10\):\*\* plain vote \*\*(\w+)\*\* \((\d+) of 10\).*weighted vote \*\*(\w+)\*\*", line
    )
    assert match, line
    classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    assert match.group(1) in classes and match.group(3) in classes
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the gallery and the vote
    at.slider(key="image_k").set_value(3).run()
    assert_clean(at)
    assert "**k-NN prediction (k=3):**" in text_of(at)


def test_class_view_shows_the_curve_the_baseline_and_the_table(app_env):
    at = open_ready("pages/images.py")
    at.segmented_control(key="image_view").set_value("How well are classes separated?").run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    text = text_of(at)
    best = re.search(r"\*\*Best: ([\d.]+)% at k=(\d+)\*\*.*nearest class centroid.*\*\*([\d.]+)%\*\*", text)
    assert best, text
    assert 1 <= int(best.group(2)) <= 50
    assert len(at.get("plotly_chart")) == 3  # precision bars, confusion, the k-NN curve
    table = at.dataframe[0].value
    assert list(table["class"])[:2] == ["airplane", "automobile"] and len(table) == 10
    assert set(table["items"]) == {200}
    assert at.slider(key="image_knn_table_k").value == int(best.group(2))
    at.slider(key="image_knn_table_k").set_value(1).run()
    assert "plain, k=1" in at.dataframe[0].value.columns
    assert list((app_env / "indexes").glob("*/knn-*.json")), "the result was saved beside the index"
