"""Fuzzing ``POST /v1/chat/completions`` with hypothesis: arbitrary JSON, and valid requests
with one field replaced by anything. The server never crashes and never answers 5xx; every
refusal is an OpenAI-style error that names the field, with a 4xx status."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastctrl.digits.pages import PageGenerator
from fastctrl.serve.cli import ServeArgs

from .serve_kit import chat_body, data_url, running_server

pytestmark = pytest.mark.usefixtures("one_thread")

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    ("model",),
    ("messages",),
    ("max_tokens",),
    ("stream",),
    ("temperature",),
    ("fastctrl",),
    ("fastctrl", "budget_ms"),
    ("fastctrl", "task_type"),
    ("vllm_xargs",),
    ("vllm_xargs", "fastctrl_budget_ms"),
    ("messages", 0, "content"),
    ("messages", 0, "role"),
    ("messages", 0, "content", 1, "image_url"),
    ("messages", 0, "content", 1, "image_url", "url"),
    ("messages", 0, "content", 0, "text"),
]


@pytest.fixture(scope="module")
def served():
    page = PageGenerator("test", 3).page(0)
    with running_server(ServeArgs(warmup=1, max_queue=8)) as (url, _):
        with httpx.Client(base_url=url, timeout=30) as http:
            yield http, chat_body(page.question, data_url(page.rgb))


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["code"] == r.status_code and err["message"]


def replace(body: dict, path: tuple, value: object) -> dict:
    import copy

    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=JSON)
def test_arbitrary_json_never_crashes(served, body):
    http, _ = served
    check(http.post("/v1/chat/completions", json=body))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(FIELDS), value=JSON)
def test_one_field_replaced_by_anything_never_crashes(served, path, value):
    http, valid = served
    r = http.post("/v1/chat/completions", json=replace(valid, path, value))
    check(r)
    if r.status_code in (400, 404):  # the error names the field it refused (or the body)
        param = r.json()["error"]["param"]
        assert param is None or param.split(".")[0].split("[")[0] in {
            "model",
            "messages",
            "max_tokens",
            "stream",
            "temperature",
            "fastctrl",
            "vllm_xargs",
            "max_completion_tokens",
            "n",
        }, param


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_bytes_that_are_not_json_never_crash(served, raw):
    http, _ = served
    check(
        http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    )


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_budgets_are_refused(served, token):
    """Python's JSON reader takes NaN / Infinity tokens: the budget check must refuse them."""
    import json

    http, valid = served
    text = json.dumps(replace(valid, ("fastctrl", "budget_ms"), 12345.0)).replace("12345.0", token)
    r = http.post(
        "/v1/chat/completions", content=text.encode(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "fastctrl.budget_ms"
