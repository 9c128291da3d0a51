"""``fastctrl serve`` on the digits VLM and its shipped controller, over real HTTP on
127.0.0.1, driven by the ``openai`` client and httpx."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from fastctrl.digits.pages import PageGenerator
from fastctrl.serve.cli import ServeArgs

from .serve_kit import chat_body, data_url, running_server

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pages():
    gen = PageGenerator("test", 11)
    return [gen.page(i) for i in range(8)]


@pytest.fixture(scope="module")
def server():
    with running_server(ServeArgs(warmup=1)) as (url, state):
        yield url, state


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_a_chat_completion_answers_with_its_config_and_timings(server, pages):
    url, state = server
    page = pages[0]
    out = client(url).chat.completions.create(
        model="fastctrl-digits",
        messages=chat_body(page.question, data_url(page.rgb))["messages"],
        max_tokens=5,
        extra_body={"fastctrl": {"budget_ms": 400.0, "task_type": page.task_type}},
    )
    assert out.choices[0].message.content == page.answer  # the trained model reads the page
    fc = out.model_extra["fastctrl"]
    assert set(fc["config"]) == set(state.scheduler.runner.space.names)
    assert fc["decided_by"] == "controller" and fc["budget_ms"] == 400.0
    assert 0 < fc["remaining_budget_ms"] <= 400.0
    assert fc["decision_ms"] > 0 and fc["model_ms"] > 0 and fc["queue_ms"] >= 0
    assert fc["total_ms"] >= fc["model_ms"] and fc["deadline_met"] == (fc["total_ms"] <= 400.0)
    assert out.usage.completion_tokens >= 1


def test_the_budget_also_comes_as_vllm_xargs_and_a_tight_one_runs_cheaper(server, pages):
    url, state = server
    page = pages[1]
    tight_ms = round(2 * state.scheduler.cheapest_ms, 1)
    loose = httpx.post(
        f"{url}/v1/chat/completions",
        json=chat_body(page.question, data_url(page.rgb), vllm_xargs={"fastctrl_budget_ms": 500}),
    ).json()["fastctrl"]
    tight = httpx.post(
        f"{url}/v1/chat/completions",
        json=chat_body(
            page.question, data_url(page.rgb), vllm_xargs={"fastctrl_budget_ms": tight_ms}
        ),
    ).json()["fastctrl"]
    assert loose["budget_ms"] == 500 and tight["budget_ms"] == tight_ms
    cost = lambda c: sum(c.values())  # noqa: E731 (grids ascend: a smaller sum runs less)
    assert cost(tight["config"]) < cost(loose["config"])


def test_streaming_sends_the_answer_then_the_fastctrl_object(server, pages):
    url, _ = server
    page = pages[2]
    stream = client(url).chat.completions.create(
        model="fastctrl-digits",
        messages=chat_body(page.question, data_url(page.rgb))["messages"],
        max_tokens=5,
        stream=True,
        extra_body={"fastctrl": {"budget_ms": 400.0}},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip() == page.answer
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert "config" in chunks[-1].model_extra["fastctrl"]


def test_models_health_and_metrics(server, pages):
    url, _ = server
    assert [m.id for m in client(url).models.list()] == ["fastctrl-digits"]
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    page = pages[3]
    httpx.post(f"{url}/v1/chat/completions", json=chat_body(page.question, data_url(page.rgb)))
    text = httpx.get(f"{url}/metrics").text
    for name in (
        "fastctrl_queue_depth",
        "fastctrl_decisions_total",
        "fastctrl_deadlines_total",
        "fastctrl_controller_ms_bucket",
        "fastctrl_batch_size_bucket",
    ):
        assert name in text


@pytest.mark.parametrize(
    "mutate, status, param",
    [
        (lambda b: b.update(model="gpt-9"), 404, "model"),
        (lambda b: b.update(fastctrl={"budget_ms": 0}), 400, "fastctrl.budget_ms"),
        (lambda b: b.update(fastctrl={"budget_ms": -5}), 400, "fastctrl.budget_ms"),
        (lambda b: b.update(vllm_xargs={"fastctrl_budget_ms": "soon"}), 400, "vllm_xargs"),
        (lambda b: b.update(fastctrl={"task_type": "poetry"}), 400, "fastctrl.task_type"),
        (lambda b: b.update(temperature=0.7), 400, None),
        (lambda b: b.update(max_tokens=100000), 400, "max_tokens"),
        (lambda b: b["messages"][0]["content"].pop(1), 400, "messages"),
        (
            lambda b: b["messages"][0]["content"][1]["image_url"].update(
                url="data:image/png;base64,!!"
            ),
            400,
            "messages[0].content[1].image_url",
        ),
        (
            lambda b: b["messages"][0]["content"][1]["image_url"].update(
                url="data:image/png;base64,aGVsbG8="
            ),
            400,
            "messages[0].content[1].image_url",
        ),
        (
            lambda b: b["messages"][0]["content"][1]["image_url"].update(url="https://x.org/a.png"),
            400,
            "messages[0].content[1].image_url",
        ),
        (
            lambda b: b["messages"][0]["content"][1]["image_url"].update(url="/etc/passwd"),
            400,
            "messages[0].content[1].image_url",
        ),
        (
            lambda b: b["messages"][0]["content"].append(dict(b["messages"][0]["content"][1])),
            400,
            "messages[0].content[2].image_url",
        ),
        (lambda b: b["messages"][0]["content"].append({"type": "audio", "audio": "x"}), 400, None),
        (lambda b: b["messages"][0]["content"][0].update(text="x" * 5000), 413, "messages"),
        (lambda b: b.pop("messages"), 400, "messages"),
    ],
)
def test_bad_requests_get_an_openai_error_naming_the_field(server, pages, mutate, status, param):
    url, _ = server
    page = pages[4]
    body = chat_body(page.question, data_url(page.rgb))
    mutate(body)
    r = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == status
    if param is not None:
        assert err["param"] is not None and err["param"].startswith(param), err


def test_malformed_json_and_wrong_content_type(server):
    url, _ = server
    r = httpx.post(
        f"{url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = httpx.post(
        f"{url}/v1/chat/completions", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert 400 <= r.status_code < 500 and "error" in r.json()


def test_an_infeasible_budget_is_refused_with_429(server, pages):
    url, state = server
    page = pages[5]
    budget = state.scheduler.cheapest_ms / 2
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json=chat_body(page.question, data_url(page.rgb), fastctrl={"budget_ms": budget}),
    )
    assert r.status_code == 429, r.text
    assert r.json()["error"]["param"] == "fastctrl.budget_ms"


def test_api_key_is_required_when_set_and_answers_are_logged(pages, tmp_path):
    log_dir = tmp_path / "log"
    with running_server(ServeArgs(warmup=0, api_key="sekret", output_dir=str(log_dir))) as (
        url,
        _,
    ):
        page = pages[6]
        body = chat_body(page.question, data_url(page.rgb))
        assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 401
        ok = httpx.post(
            f"{url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer sekret"}
        )
        assert ok.status_code == 200, ok.text
        assert httpx.get(f"{url}/health").status_code == 200  # health stays open
    lines = (log_dir / "requests.jsonl").read_text().splitlines()
    assert len(lines) == 1  # the answered request; the refused one is not an answer
    assert json.loads(lines[0])["config"] == ok.json()["fastctrl"]["config"]


def test_local_files_only_under_the_allowed_path(tmp_path, pages):
    from PIL import Image

    page = pages[7]
    allowed = tmp_path / "media"
    allowed.mkdir()
    Image.fromarray(page.rgb).save(allowed / "page.png")
    (tmp_path / "secret.png").write_bytes((allowed / "page.png").read_bytes())
    with running_server(ServeArgs(warmup=0, allowed_local_media_path=str(allowed))) as (url, _):
        ok = httpx.post(
            f"{url}/v1/chat/completions",
            json=chat_body(page.question, f"file://{allowed / 'page.png'}"),
        )
        assert (
            ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == page.answer
        )
        out = httpx.post(
            f"{url}/v1/chat/completions",
            json=chat_body(page.question, str(allowed / ".." / "secret.png")),
        )
        assert out.status_code == 403, out.text


def test_serve_flags_are_checked():
    with pytest.raises(ValueError, match="--max_batch"):
        ServeArgs(max_batch=0)
    with pytest.raises(ValueError, match="--default_budget_ms"):
        ServeArgs(default_budget_ms=-1.0)
    assert json.loads(json.dumps({"ok": True}))


def test_the_load_test_drives_a_running_server(server, tmp_path):
    """``fastctrl loadtest --url``: Poisson arrivals through the openai client, every request
    accounted for, the report's numbers consistent with each other, JSON and figure written."""
    from fastctrl.serve.loadtest import LoadTestArgs, run

    url, _ = server
    out = tmp_path / "lt"
    # loose budgets (10x the full config's latency): what is answered does not hang on how
    # loaded this host is; refusals and attainment under load are the benchmark's business
    args = LoadTestArgs(
        url=url, rates=(5.0,), requests=12, budget_ratios=(10.0, 20.0), output_dir=str(out)
    )
    assert run(args) == 0
    doc = json.loads((out / "loadtest.json").read_text())
    assert (out / "loadtest.png").stat().st_size > 1000
    o = doc["results"]["url"]["5"]["overall"]
    assert o["sent"] == 12 and o["answered"] + o["refused"] + o["failed"] == 12
    assert o["answered"] >= 6 and o["failed"] == 0
    assert 0.0 <= o["attainment"] <= o["answered"] / 12
    assert o["accuracy"] > 0.5  # the trained model reads most pages
    classes = doc["results"]["url"]["5"]["per_budget_class"]
    assert sum(c["sent"] for c in classes.values()) == 12
    from fastctrl.evaluate.live import reference_latency_ms
    from fastctrl.profile.table import Profile

    want = reference_latency_ms(Profile.load("fastctrl-digits"))
    assert doc["reference_ms"]["url"] == pytest.approx(want)


def test_shutdown_answers_the_requests_in_flight(pages):
    """Stopping the server (uvicorn's graceful exit, as SIGINT does) answers every request it
    has accepted before it ends: nothing in flight is lost."""
    import threading
    import time

    with running_server(ServeArgs(warmup=0, max_queue=32)) as (url, state):
        page = pages[0]
        body = chat_body(page.question, data_url(page.rgb), fastctrl={"budget_ms": 1000.0})
        codes: list[int] = []

        def send() -> None:
            codes.append(
                httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code
            )

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        waited = time.perf_counter()
        while state.scheduler.depth < 3 and time.perf_counter() - waited < 10:
            time.sleep(0.0005)
        assert state.scheduler.depth >= 3  # the premise: requests queued when it stops
        # leaving the block asks the server to exit while the requests are in flight
    for t in threads:
        t.join(60)
    assert codes == [200] * 8


def test_a_lookup_table_run_is_served(pages, tmp_path):
    """E5's lookup table is servable: `--controller` takes a lut run directory; each request's
    config is the table's for its task type and the budget it decided on; the task type is
    required (the table decides by it)."""
    from fastctrl.policy.lookup_table import RUN_SUBDIR, LookupTablePolicy
    from fastctrl.train import main as train_main

    run = tmp_path / "lut"
    assert (
        train_main(
            [
                "--method",
                "lut",
                "--profile",
                "fastctrl-digits",
                "--output_dir",
                str(run),
                "--max_env_steps",
                "20000",
                "--quiet",
            ]
        )
        == 0
    )
    table = LookupTablePolicy.from_pretrained(run / RUN_SUBDIR)
    served = 0
    with running_server(ServeArgs(warmup=0, controller=str(run))) as (url, _):
        for page, budget in zip(pages[:4], (9.0, 12.0, 16.0, 30.0), strict=True):
            body = chat_body(
                page.question,
                data_url(page.rgb),
                fastctrl={"budget_ms": budget, "task_type": page.task_type},
            )
            r = httpx.post(f"{url}/v1/chat/completions", json=body)
            if r.status_code == 429:  # below the floor on this host: refused, not guessed
                continue
            assert r.status_code == 200, r.text
            fc = r.json()["fastctrl"]
            assert fc["decided_by"] == "lookup_table"
            want = table.decide(page.task_type, fc["remaining_budget_ms"] / fc["latency_scale"])
            assert fc["config"] == want.values
            served += 1
        assert served >= 3  # the premise: the table decided real requests
        r = httpx.post(
            f"{url}/v1/chat/completions", json=chat_body(page.question, data_url(page.rgb))
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "fastctrl.task_type"


def test_a_missing_serve_extra_names_the_install():
    from fastctrl.serve import require_serve_extra

    require_serve_extra("json")  # present: nothing happens
    with pytest.raises(ImportError, match=r"no_such_module_x.*pip install -e '\.\[serve\]'"):
        require_serve_extra("json", "no_such_module_x")
