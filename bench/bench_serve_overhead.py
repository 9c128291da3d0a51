"""What the server adds to a request at low load: HTTP + scheduling + the response, against
calling the hooked model directly on the same request.

    python bench/bench_serve_overhead.py --json bench/results/bench_serve_overhead.json

One process: ``fastctrl serve``'s own state (the digits VLM, its shipped controller, int8
engine, one torch thread) answers the same digits pages, one at a time, (a) directly through
``ModelRunner.run`` (encode, decide, answer: what a request costs without a server) and (b)
through uvicorn on 127.0.0.1 with a keep-alive httpx client, interleaved so drift hits both.
The budget is large (the full config is decided every time... by the controller, see
``--budget_ms``) so both run the same configs. Reports medians and the overhead (b - a), the
controller's decision time and its share, and the server-side split (queue, prep, model).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import httpx
import torch
import uvicorn
from fastctrl._C import available_isas
from sysinfo import cpu_model

from fastctrl.digits.pages import PageGenerator
from fastctrl.serve.app import create_app
from fastctrl.serve.cli import ServeArgs, build_state
from fastctrl.serve.loadtest import pages
from fastctrl.serve.runner import Job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--requests", type=int, default=300, help="requests per path")
    ap.add_argument("--budget_ms", type=float, default=10.0, help="each request's budget")
    ap.add_argument("--port", type=int, default=8741, help="port on 127.0.0.1")
    args = ap.parse_args()
    state = build_state(ServeArgs(warmup=3))
    runner = state.scheduler.runner
    reqs = pages(64, 4321)
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), host="127.0.0.1", port=args.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{args.port}"
    while True:
        try:
            httpx.get(f"{url}/health")
            break
        except httpx.TransportError:
            time.sleep(0.05)
    gen = PageGenerator("test", 4321)
    from PIL import Image

    direct, http, served = [], [], []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(args.requests + 20):
            q, data_url, _, task = reqs[i % len(reqs)]
            page = gen.page(i % len(reqs))
            text = runner.processor.render_chat(
                [{"role": "user", "content": [{"type": "text", "text": q}, {"type": "image"}]}]
            )
            t0 = time.perf_counter()
            job = Job(
                str(i),
                text,
                [Image.fromarray(page.rgb).convert("RGB")],
                args.budget_ms,
                task,
                8,
                t0,
            )
            runner.run([job])
            d = (time.perf_counter() - t0) * 1e3
            body = {
                "model": state.model_name,
                "max_tokens": 8,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": q},
                            {"type": "image_url", "image_url": {"url": data_url}},
                        ],
                    }
                ],
                "fastctrl": {"budget_ms": args.budget_ms, "task_type": task},
            }
            t0 = time.perf_counter()
            r = client.post("/v1/chat/completions", json=body)
            h = (time.perf_counter() - t0) * 1e3
            r.raise_for_status()
            if i >= 20:
                direct.append(d)
                http.append(h)
                served.append(r.json()["fastctrl"])
    server.should_exit = True
    thread.join(30)
    med = statistics.median
    out = {
        "machine": {
            "cpu": cpu_model(),
            "isas": available_isas(),
            "torch_threads": torch.get_num_threads(),
        },
        "requests": args.requests,
        "budget_ms": args.budget_ms,
        "direct_ms_p50": med(direct),
        "http_ms_p50": med(http),
        "overhead_ms_p50": med(h - d for h, d in zip(http, direct, strict=True)),
        "server_queue_ms_p50": med(s["queue_ms"] for s in served),
        "server_prep_ms_p50": med(s["prep_ms"] for s in served),
        "server_model_ms_p50": med(s["model_ms"] for s in served),
        "decision_ms_p50": med(s["decision_ms"] for s in served),
        "decision_share_of_server_total_p50": med(s["decision_ms"] / s["total_ms"] for s in served),
        "decision_share_of_client_latency_p50": med(
            s["decision_ms"] / h for s, h in zip(served, http, strict=True)
        ),
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
