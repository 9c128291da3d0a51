"""Start one vLLM engine and run a spec of requests through it: ``python -m
tests_vllm.engine_run SPEC.json OUT.json``.

Each engine runs in its own process so that the plugin's switch (an environment variable read
by every vLLM process at start-up) is exactly what the spec says. SPEC: ``model``, ``env``
(set before vLLM is imported), ``requests`` (``prompt`` token ids, ``max_tokens``,
``extra_args``), ``modes`` (``batch``: all requests in one ``generate``; ``alone``: one
``generate`` per request), optional ``timing`` (``repeats``, ``sets``: named request lists,
each timed as one ``generate``).
OUT: tokens per mode, the model class vLLM built, the timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    os.environ.update({k: str(v) for k, v in spec.get("env", {}).items()})
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"  # apply_model: the class name
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(
        spec["model"],
        skip_tokenizer_init=True,
        enforce_eager=True,
        dtype="float32",
        max_model_len=512,
        max_num_seqs=spec.get("max_num_seqs", 16),
        max_num_batched_tokens=spec.get("max_num_batched_tokens", 2048),
        enable_prefix_caching=False,
        seed=0,
    )

    def prompts_and_params(rs: list[dict]) -> tuple[list, list]:
        """Token prompts and greedy sampling params (with their extra_args) of requests."""
        prompts = [TokensPrompt(prompt_token_ids=r["prompt"]) for r in rs]
        params = [
            SamplingParams(
                max_tokens=r["max_tokens"],
                temperature=0.0,
                detokenize=False,
                ignore_eos=True,
                extra_args=r.get("extra_args") or None,
            )
            for r in rs
        ]
        return prompts, params

    prompts, params = prompts_and_params(spec["requests"])
    from tests_vllm.tiny import model_class_name

    out: dict = {"model_class": llm.apply_model(model_class_name)[0]}
    if "batch" in spec.get("modes", []):
        res = llm.generate(prompts, params, use_tqdm=False)
        out["batch"] = [list(r.outputs[0].token_ids) for r in res]
    if "alone" in spec.get("modes", []):
        out["alone"] = [
            list(llm.generate([p], [s], use_tqdm=False)[0].outputs[0].token_ids)
            for p, s in zip(prompts, params, strict=True)
        ]
    timing = spec.get("timing")
    if timing:
        # named request sets, timed round-robin (one warm-up each) so that drift on a shared
        # machine falls on every set alike
        sets = {
            name: (*prompts_and_params(rs), sum(r["max_tokens"] for r in rs))
            for name, rs in timing["sets"].items()
        }
        for ps, ss, _ in sets.values():
            llm.generate(ps, ss, use_tqdm=False)
        times: dict[str, list[float]] = {name: [] for name in sets}
        for _ in range(timing["repeats"]):
            for name, (ps, ss, _) in sets.items():
                t0 = time.perf_counter()
                llm.generate(ps, ss, use_tqdm=False)
                times[name].append(time.perf_counter() - t0)
        out["times_s"] = times
        out["new_tokens"] = {name: n for name, (_, _, n) in sets.items()}
    with open(out_path, "w") as f:
        json.dump(out, f)


def run_engine(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    spec_path, out_path = path.with_suffix(".spec.json"), path.with_suffix(".out.json")
    spec_path.write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTCTRL_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "tests_vllm.engine_run", str(spec_path), str(out_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"engine run failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return json.loads(out_path.read_text())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
