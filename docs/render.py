"""Render every results table of the docs (and the README's headlines) from committed result files.

    python docs/render.py            # rewrite each rendered block in place
    python docs/render.py --check    # exit 1, naming page and block, where a page and its file disagree

A page holds a rendered block between two markers::

    <!-- render:serve.loadtest -->
    ...generated, never edited by hand...
    <!-- /render:serve.loadtest -->

``REGISTRY`` is the one table of what is rendered: block name -> source files -> render
function. Every block ends with a caption naming its source file(s), the command that produced
them, the machine (CPU, ISA), the date and the commit, each as the file records it; what a file
does not record is said so, never filled in. A block whose source file is missing fails both
modes with the file named. To add a table: write a render function, add a ``Block`` to
``REGISTRY``, put its markers on a page, run ``python docs/render.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: the pages that may hold rendered blocks: every docs page and the README
PAGE_GLOBS = ("docs/**/*.md", "README.md")
# markers stand alone on their lines (a marker quoted inside text is not one)
BLOCK = re.compile(
    r"^<!-- render:(?P<name>[\w.-]+) -->\n(?P<body>.*?)^<!-- /render:(?P=name) -->$", re.S | re.M
)
OPEN = re.compile(r"^<!-- render:(?P<name>[\w.-]+) -->$", re.M)
NOT_RECORDED = "not recorded in the file"


class RenderError(Exception):
    """A block that cannot be rendered (missing or malformed source) or a page out of date."""


# --------------------------------------------------------------------------- captions


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def machine_text(cpu: str | None, isas: Sequence[str] | None, extra: str = "") -> str:
    """``AMD EPYC (avx2, avx512f)``, saying what the file does not record."""
    cpu_s = cpu or f"CPU {NOT_RECORDED}"
    isa_s = ", ".join(isas) if isas else f"ISA {NOT_RECORDED}"
    return f"{cpu_s} ({isa_s}{', ' + extra if extra else ''})"


def caption(
    sources: Sequence[str],
    *,
    command: str | None,
    machine: str,
    date: str | None,
    commit: str | None,
    command_from_file: bool = True,
) -> str:
    """The provenance line under a table. ``command_from_file=False``: the file does not record
    its command, and ``command`` is the documented command that writes that file."""
    if command is None:
        cmd = f"command {NOT_RECORDED}"
    elif command_from_file:
        cmd = f"command `{command}`"
    else:
        cmd = (
            f"command `{command}` (the command that writes this file; the file does not record it)"
        )
    return (
        f"*Source: {', '.join(f'`{s}`' for s in sources)}; {cmd}; machine: {machine}; "
        f"date: {date or NOT_RECORDED}; commit: {commit or NOT_RECORDED}.*"
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RenderError(f"{path.relative_to(ROOT)}: cannot read it as JSON ({e})") from e


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "---") -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + f"{align}|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def pytest_benchmark_provenance(doc: dict[str, Any]) -> dict[str, Any]:
    """command, machine, date and commit from a pytest-benchmark ``--benchmark-json`` file."""
    mi = doc.get("machine_info") or {}
    ci = doc.get("commit_info") or {}
    cpu = (mi.get("cpu") or {}).get("brand_raw")
    flags = set((mi.get("cpu") or {}).get("flags") or [])
    # py-cpuinfo's flag names -> the names fastctrl._C.available_isas() uses
    names = {
        "avx2": "avx2",
        "avx512f": "avx512f",
        "avx512_vnni": "avx512_vnni",
        "avx512vnni": "avx512_vnni",
        "amx_int8": "amx",
    }
    isas = list(dict.fromkeys(n for f, n in names.items() if f in flags))
    commit = None
    if ci.get("id"):
        commit = ci["id"][:12] + (" (tree with uncommitted changes)" if ci.get("dirty") else "")
    return {
        "machine": machine_text(cpu, isas),
        "date": doc.get("datetime", "")[:10] or None,
        "commit": commit,
    }


# --------------------------------------------------------------------------- serving


def render_loadtest(paths: Sequence[Path]) -> str:
    """Per variant and offered rate: goodput, attainment, accuracy, refusals, latency
    percentiles; then, at the lowest rate, attainment / accuracy per budget class."""
    doc = read_json(paths[0])
    res = doc["results"]
    m = doc.get("machine") or {}
    ref = next(iter(doc["reference_ms"].values()))
    lines = [
        f"max_batch {doc['args']['max_batch']}; budgets are ratios of {ref:.2f} ms (the "
        "profile's full-config train-split mean).",
        "",
    ]
    rows = []
    for v, runs in res.items():
        for rate, r in runs.items():
            o = r["overall"]
            lat = o["latency_ms"]
            rows.append(
                [
                    v,
                    rate,
                    fmt(o["goodput_rps"], 1),
                    fmt(o["attainment"], 3),
                    fmt(o["accuracy"], 3),
                    f"{o['refused']}/{o['sent']}",
                    fmt(lat["p50"], 1),
                    fmt(lat["p95"], 1),
                    fmt(lat["p99"], 1),
                ]
            )
    lines += table(
        [
            "variant",
            "req/s",
            "goodput",
            "attainment",
            "accuracy",
            "refused",
            "p50 ms",
            "p95 ms",
            "p99 ms",
        ],
        rows,
    )
    low = min(next(iter(res.values())), key=float)
    classes = list(next(iter(res.values()))[low]["per_budget_class"])
    lines += ["", f"Per budget class at {low} req/s (attainment / accuracy):", ""]
    rows = []
    for v, runs in res.items():
        cells = [
            f"{fmt(runs[low]['per_budget_class'][c]['attainment'], 2)} / "
            f"{fmt(runs[low]['per_budget_class'][c]['accuracy'], 2)}"
            for c in classes
        ]
        rows.append([v, *cells])
    lines += table(["variant", *(f"{c}x" for c in classes)], rows)
    lines += [
        "",
        caption(
            [rel(p) for p in paths],
            command=doc.get("command"),
            machine=machine_text(
                m.get("cpu"), m.get("cpu_isa"), f"{m['cpu_count']} vCPU" if "cpu_count" in m else ""
            ),
            date=doc.get("date"),
            commit=doc.get("commit"),
        ),
    ]
    return "\n".join(lines)


def render_serve_overhead(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    m = d.get("machine") or {}
    rows = [
        ["calling the hooked model directly", fmt(d["direct_ms_p50"])],
        ["through the server (HTTP, client clock)", fmt(d["http_ms_p50"])],
        ["server overhead (difference)", fmt(d["overhead_ms_p50"])],
        ["arrival to batch start (server)", fmt(d["server_queue_ms_p50"])],
        ["processor (server)", fmt(d["server_prep_ms_p50"])],
        ["model (server)", fmt(d["server_model_ms_p50"])],
        ["controller decision", fmt(d["decision_ms_p50"])],
        [
            "decision share of the server's total",
            f"{100 * d['decision_share_of_server_total_p50']:.1f}%",
        ],
        [
            "decision share of the client latency",
            f"{100 * d['decision_share_of_client_latency_p50']:.1f}%",
        ],
    ]
    lines = [
        f"{d['requests']} sequential requests, budget {d['budget_ms']:g} ms, "
        f"{m.get('torch_threads', '?')} torch thread(s); p50:",
        "",
        *table(["what", "ms (p50)"], rows),
        "",
        caption(
            [rel(paths[0])],
            command="python bench/bench_serve_overhead.py --json bench/results/bench_serve_overhead.json",
            command_from_file=False,
            machine=machine_text(m.get("cpu"), m.get("isas")),
            date=d.get("date"),
            commit=d.get("commit"),
        ),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- tuning

TUNE_METHODS = ("lut", "supervised", "ppo", "dpo", "grpo")
TUNE_FILES = ("best_params.json", "trials.json", "tune_summary.md")


def render_tune(paths: Sequence[Path]) -> str:
    rows = []
    commands = []
    for method in TUNE_METHODS:
        best = read_json(ROOT / "bench/results/tune" / method / "best_params.json")
        trials = read_json(ROOT / "bench/results/tune" / method / "trials.json")["trials"]
        done = [t for t in trials if t.get("state") == "COMPLETE" and t.get("value") is not None]
        first = next((t for t in done if t["number"] == 0), None)
        params = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in best["params"].items()
        )
        rows.append(
            [
                method,
                fmt(first["value"], 3) if first else "-",
                f"**{best['value']:.3f}** (trial {best['trial']})",
                f"{len(done)}",
                f"{sum(t.get('duration_s') or 0 for t in done):,.0f}",
                params or "(nothing to tune)",
            ]
        )
        commands.append(
            f"{method}: `{tune_command(ROOT / 'bench/results/tune' / method / 'tune_summary.md')}`"
        )
    lines = [
        "Seed 0's best validation utility (never the test split):",
        "",
        *table(["method", "trial 0", "best", "trials", "sum of trial times s", "picked"], rows),
        "",
        "The commands, as each `tune_summary.md` records them: " + "; ".join(commands) + ".",
        "",
        caption(
            [rel(p) for p in paths],
            command="per method, above",
            machine=machine_text(None, None),
            date=None,
            commit=None,
        ),
    ]
    return "\n".join(lines)


def tune_command(summary: Path) -> str | None:
    """The command a ``tune_summary.md`` records on its ``Command:`` line."""
    for line in summary.read_text().splitlines():
        if line.startswith("Command:"):
            return " ".join(re.findall(r"`([^`]+)`", line)) or None
    return None


def render_tune_method(paths: Sequence[Path]) -> str:
    """One method's pick: its parameters, the validation utility of trial 0 and of the pick."""
    best = read_json(paths[0])
    trials = read_json(paths[1])["trials"]
    first = next((t for t in trials if t["number"] == 0 and t.get("value") is not None), None)
    rows = [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in best["params"].items()]
    lines = [
        f"Best validation utility {best['value']:.3f} (trial {best['trial']} of {best['trials']}; "
        f"trial 0: {fmt(first['value'], 3) if first else '-'}). Train with it: "
        f"`{best['train_command']}`.",
        "",
    ]
    lines += table(["parameter", "value"], rows) if rows else ["(nothing to tune)"]
    lines += [
        "",
        caption(
            [rel(p) for p in paths],
            command=tune_command(paths[2]),
            machine=machine_text(None, None),
            date=None,
            commit=None,
        ),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- digits

DIGITS_PROFILE = "fastctrl/digits/profile/digits.parquet"
DIGITS_SWEEP = "fastctrl/digits/profile/digits.sweep.json"


def _digits_sweep_caption(command: str) -> str:
    sweep = read_json(ROOT / DIGITS_SWEEP)
    m = sweep.get("machine") or {}
    return caption(
        [DIGITS_PROFILE, DIGITS_SWEEP],
        command=command,
        command_from_file=False,
        machine=machine_text(m.get("cpu"), m.get("cpu_isa"), f"{m.get('cpu_count', '?')} vCPU"),
        date=sweep.get("date"),
        commit=sweep.get("commit"),
    )


def render_digits_training(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    tasks = list(d["curve"][0]["val_acc_full_per_task"])
    rows = [
        [
            str(c["step"]),
            fmt(c["val_acc_full"], 3),
            *(fmt(c["val_acc_full_per_task"][t], 3) for t in tasks),
            fmt(c["val_acc_cheapest"], 3),
        ]
        for c in d["curve"]
    ]
    a = d["args"]
    lines = [
        f"Stage 2's validation accuracy ({a['eval_pages']} val-pool pages) at the full config "
        f"and the cheapest; {d['parameters']:,} parameters, {d['train_wall_s']:,.0f} s of "
        f"training on {d['torch_threads']} threads; stage 1 ended at "
        f"{d['vision_patch_accuracy']:.3f} digit accuracy on its last batch.",
        "",
        *table(["step", "full: all", *tasks, "cheapest: all"], rows),
        "",
        caption(
            [rel(paths[0])],
            command=f"python -m fastctrl.digits.train --output_dir {a['output_dir']}",
            command_from_file=False,
            machine=machine_text(None, None),
            date=d.get("date"),
            commit=d.get("commit"),
        ),
    ]
    return "\n".join(lines)


def render_digits_knobs(paths: Sequence[Path]) -> str:
    from fastctrl.digits.report import knob_table, to_markdown
    from fastctrl.profile.table import Profile

    md = to_markdown(knob_table(Profile.load(paths[0])))
    return (
        md.rstrip()
        + "\n\n"
        + _digits_sweep_caption(
            "python -m fastctrl.digits.report --profile fastctrl-digits (the table); the profile: "
            "python -m fastctrl.profile --model fastctrl-digits --dataset "
            "runs/digits/data/profile/questions.jsonl --grid "
            '\'{"max_crops":[1,2,4],"top_k":[1,2,4],"num_active_blocks":[1,2,3,4,6,8]}\' '
            "--max_new_tokens 5 --warmup 1 --repeats 2 --output_dir runs/digits/profile"
        )
    )


def render_digits_headroom(paths: Sequence[Path]) -> str:
    from fastctrl.digits.headroom import headroom, to_markdown
    from fastctrl.profile.table import Profile

    md = to_markdown(headroom(Profile.load(paths[0])))
    return (
        md.rstrip()
        + "\n\n"
        + _digits_sweep_caption("python -m fastctrl.digits.headroom --profile fastctrl-digits")
    )


def render_answer_path(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    rows = [
        [name, fmt(c["generate_ms"]), fmt(c["lean_ms"]), f"{c['generate_adds_ms']:.2f} ms"]
        for name, c in d["configs"].items()
    ]
    lines = [
        f"One `list` page, interleaved call by call ({d['rounds']} rounds, one thread); medians:",
        "",
        *table(["config", "`generate()` ms", "lean path ms", "`generate()` adds"], rows),
        "",
        f"Full / cheapest on that page: {d['span_generate']:.2f}x with `generate()`, "
        f"{d['span_lean']:.2f}x with the lean path.",
        "",
        caption(
            [rel(paths[0])],
            command="cd bench && python bench_answer_path.py --json results/bench_answer_path.json",
            command_from_file=False,
            machine=machine_text(d.get("cpu"), d.get("isas"), f"torch {d.get('torch', '?')}"),
            date=d.get("date"),
            commit=d.get("commit"),
        ),
    ]
    return "\n".join(lines)


def render_digits_tokens(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    rows = [[n, fmt(d["median_ms"][n]), f"{d['ratio_to_served'][n]:.2f}x"] for n in d["median_ms"]]
    lines = [
        f"The language model's forward per prompt length ({d['blocks']} blocks, "
        f"{d['rounds']} rounds, medians):",
        "",
        *table(["prompt tokens", "ms", "vs 24 tokens (about the served prompt)"], rows),
        "",
        caption(
            [rel(paths[0])],
            command="cd bench && python bench_digits_tokens.py --json results/bench_digits_tokens.json",
            command_from_file=False,
            machine=machine_text(d.get("cpu"), d.get("isas"), f"torch {d.get('torch', '?')}"),
            date=d.get("date"),
            commit=d.get("commit"),
        ),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- Ray


def render_ray(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    c, p, t = d["compare"], d["profile"], d["task_overhead"]
    lp, rp = p["local"], p["ray"]
    rows = [
        ["`ray.init` of the local cluster", f"{d['ray_init_s']:.1f} s"],
        [
            f"a trivial task, {t['tasks']} submitted at once",
            f"{t['pipelined_ms_per_task']:.2f} ms/task",
        ],
        [
            "a trivial task, one at a time (round trip)",
            f"{t['round_trip_ms_per_task']:.2f} ms/task",
        ],
        [
            f"compare, {c['runs']} runs, `--jobs {c['local_jobs']['parallel']}`",
            f"{c['local_jobs']['runs_s']:.1f} s",
        ],
        [
            "same, `--backend ray`, new worker processes",
            f"{c['ray_cold']['runs_s']:.1f} s ({c['speedup_runs_cold']:.2f}x)",
        ],
        [
            "same, `--backend ray`, workers already started",
            f"{c['ray_warm']['runs_s']:.1f} s ({c['speedup_runs_warm']:.2f}x)",
        ],
        [f"profile, {lp['generate_calls']:,} `generate()` calls, local", f"{lp['total_s']:.1f} s"],
        [
            f"same, `--backend ray`, {rp['workers']} workers: start-up / sweep after it",
            f"{rp['startup_s']:.1f} s / {rp['sweep_after_startup_s']:.1f} s ({p['speedup_after_startup']:.2f}x after start-up)",
        ],
        [
            "one timed `generate()`, local / Ray worker",
            f"{lp['ms_per_timed_call']:.1f} / {rp['ms_per_timed_call']:.1f} ms",
        ],
    ]
    load = d.get("loadavg_before_after")
    lines = [
        f"Compare: `{c['command']}`. Profile: `{p['command']}`. "
        f"Ray {d.get('ray', '?')}, a local {d.get('cpus', '?')}-CPU cluster"
        + (
            f"; 1-minute load average {load[0][0]:.1f} before, {load[1][0]:.1f} after"
            if load
            else ""
        )
        + ".",
        "",
        *table(["what", "measured"], rows),
        "",
        caption(
            [rel(paths[0])],
            command="cd bench && python bench_ray.py --json results/bench_ray.json",
            command_from_file=False,
            machine=machine_text(d.get("cpu"), d.get("isas"), f"{d.get('cpus', '?')} vCPU"),
            date=d.get("date"),
            commit=d.get("commit"),
        ),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- engines and hook


def _benchmarks_by(doc: dict[str, Any], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """pytest-benchmark entries keyed by their ``extra_info`` values (``cache`` defaults to warm)."""
    out = {}
    for b in doc.get("benchmarks", []):
        info = {"cache": "warm", **(b.get("extra_info") or {})}
        if all(k in info for k in keys):
            out[tuple(str(info[k]) for k in keys)] = b
    return out


def render_engines(paths: Sequence[Path]) -> str:
    doc = read_json(paths[0])
    warm = {
        (p, int(b)): v
        for (p, b, c), v in _benchmarks_by(doc, "provider", "batch", "cache").items()
        if c == "warm"
    }
    providers = sorted({k[0] for k in warm}, key=lambda p: (p.startswith("fastctrl"), p))
    batches = sorted({k[1] for k in warm})
    rows = []
    for p in providers:
        cells = [
            fmt(warm[(p, bt)]["stats"]["median"] * 1e6, 1) if (p, bt) in warm else "-"
            for bt in batches
        ]
        rows.append([p, *cells])
    ratios = doc.get("fastctrl_ratios") or []
    ratio_rows = []
    for r in ratios:
        if r.get("cache", "warm") != "warm" or not str(r.get("provider", "")).startswith(
            "fastctrl"
        ):
            continue
        cells = [
            fmt(r.get(f"speedup_vs_{base}"), 2) + "x" if r.get(f"speedup_vs_{base}") else "-"
            for base in ("torch-eager", "torch-dynamic-int8", "onnxruntime-dynamic-int8")
        ]
        ratio_rows.append([r["provider"], str(r["batch"]), *cells, fmt(r.get("gmacs"), 1)])
    prov = pytest_benchmark_provenance(doc)
    lines = [
        "Medians in us, warm cache, one thread:",
        "",
        *table(["provider", *(f"B={b}" for b in batches)], rows),
    ]
    if ratio_rows:
        lines += [
            "",
            "Speedups of fastctrl's int8 kernels from the same run (median over median):",
            "",
            *table(
                [
                    "kernel",
                    "B",
                    "vs torch eager",
                    "vs torch dynamic int8",
                    "vs onnxruntime int8",
                    "GMAC/s",
                ],
                ratio_rows,
            ),
        ]
    lines += [
        "",
        caption(
            [rel(paths[0])],
            command=ENGINES_COMMAND,
            command_from_file=False,
            **prov,
        ),
    ]
    return "\n".join(lines)


ENGINES_COMMAND = (
    "pytest bench/bench_engines.py --benchmark-only --benchmark-json=bench/results/bench_engines.json "
    "--benchmark-max-time=0.3 --benchmark-min-rounds=5"
)
HOOK_COMMAND = "python bench/bench_hook.py --rounds 10 --json bench/results/bench_hook.json"


def render_hook(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    return render_hook_report(d, [rel(paths[0])])


def render_hook_report(d: dict[str, Any], sources: list[str]) -> str:
    """bench_hook.py's report: per family, latency vs full per knob value, and the hook's costs."""
    fams = d.get("families") or {}
    if not fams:
        raise RenderError(f"{sources[0]}: no 'families' in the report")
    names = list(fams)
    rows = []
    for knob, values in d["grids"].items():
        cells = [
            " / ".join(f"{fams[n]['knob_ratio_vs_full'][knob][str(v)]:.2f}" for v in values)
            for n in names
        ]
        rows.append([f"{knob} {' / '.join(map(str, values))} (latency vs full)", *cells])
    rows.append(
        [
            "hook bookkeeping at the pinned full config, p50",
            *(
                f"{fams[n]['bookkeeping_ms_p50']:.3f} ms ({fams[n]['bookkeeping_pct']:.2f}%)"
                for n in names
            ),
        ]
    )
    rows.append(
        [
            "hook time per `generate()` decode step, p50",
            *(f"{1000 * fams[n]['decode']['hook_ms_per_decode_step_p50']:.1f} us" for n in names),
        ]
    )
    rows.append(
        [
            "controller per forward (pooling + engine + config), p50",
            *(
                f"{fams[n]['controller']['controller_ms_p50']:.3f} ms "
                f"({100 * fams[n]['controller']['share_p50']:.2f}%, {fams[n]['controller']['engine']})"
                for n in names
            ),
        ]
    )
    lines = [
        f"One thread ({d['threads']}), batch 1, one prefill, text hidden {d['hidden']}, "
        f"{d['rounds']} rounds, variants interleaved; forwards timed on `{d['forward_clock']}`, "
        f"callbacks on `{d['callback_clock']}`; torch {d.get('torch', '?')}:",
        "",
        *table(["", *(f"{n} ({fams[n]['seq_len']} tokens)" for n in names)], rows),
        "",
        caption(
            sources,
            command=d.get("command") or HOOK_COMMAND,
            command_from_file="command" in d,
            machine=machine_text(d.get("cpu"), d.get("isas")),
            date=d.get("date"),
            commit=d.get("commit"),
        ),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- E5

E5_PROFILES = ("synthetic", "noisy", "digits")
E5_COLUMNS = (
    ("final_utility", "utility"),
    ("final_quality", "quality"),
    ("final_slo_violation", "SLO violation"),
    ("gap_to_oracle_pct", "gap to oracle %"),
    ("gap_closed", "gap closed"),
)


def _estimate(block: dict[str, Any], m: str) -> str:
    e = block["methods"].get(m)
    if e is None:
        return "n/a"
    f = block.get("fmt", ".3f")
    return f"{format(e['point'], f)} [{format(e['low'], f)}, {format(e['high'], f)}]"


def render_e5_statistics(doc: dict[str, Any], sources: list[str]) -> str:
    """The E5 final test table (IQM over seeds [95% CI]) and its baselines, from
    ``e5_statistics.json`` as ``fastctrl compare`` writes it."""
    meta, st = doc["meta"], doc["statistics"]
    metrics = st["metrics"]
    methods = list(meta["methods"])
    cols = [(k, label) for k, label in E5_COLUMNS if k in metrics]
    rows = [[m, *(_estimate(metrics[k], m) for k, _ in cols)] for m in methods]
    if "length_blind" in st:
        lb = st["length_blind"]
        cols.append(("length_blind", "gap to the length-blind oracle %"))
        for row, m in zip(rows, methods, strict=True):
            e = lb["methods"].get(m)
            row.append(f"{e['point']:.1f} [{e['low']:.1f}, {e['high']:.1f}]" if e else "n/a")
    base = st.get("baselines") or {}
    for b in ("best_static", "oracle"):
        if b in base:
            cells = []
            for k, _ in cols:
                v = (base[b].get(k) or {}).get("value")
                f = metrics.get(k, {}).get("fmt", ".3f")
                cells.append(format(v, f) if v is not None else "")
            rows.append([b, *cells])
    n_seeds = len(meta["seeds"]) if isinstance(meta["seeds"], list) else meta["seeds"]
    tuned = (
        "tuned (`--tuned_dir " + str(meta["tuned_dir"]) + "`)"
        if meta.get("tuned_dir")
        else "each method's defaults"
    )
    lines = [
        f"Profile: {meta['profile']}; {len(methods)} methods x {n_seeds} seeds, {tuned}, "
        f"{meta['max_env_steps']:,} env_steps (validation every {meta['eval_every_steps']:,}); "
        f"test split, IQM over seeds [95% stratified-bootstrap CI]; {meta['wall_time_s']:,.0f} s "
        f"on {meta['jobs']} {meta['backend']} slot(s).",
        "",
        *table(["method", *(label for _, label in cols)], rows),
        "",
        caption(
            sources,
            command=meta.get("command"),
            machine=(
                machine_text(meta["machine"].get("cpu"), meta["machine"].get("cpu_isa"))
                if meta.get("machine")
                else f"{NOT_RECORDED}"
            ),
            date=meta.get("date"),
            commit=meta.get("commit"),
        ),
    ]
    if not meta.get("command"):
        lines[-1] = lines[-1].rstrip(".*") + (
            f" (its arguments are: `{json.dumps(meta.get('args'), sort_keys=True)}`).*"
        )
    return "\n".join(lines)


def render_e5(paths: Sequence[Path]) -> str:
    return render_e5_statistics(read_json(paths[0]), [rel(p) for p in paths])


# --------------------------------------------------------------------------- README headlines


def headline_serve(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    res = d["results"]
    low = min(res["controller"], key=float)
    c, s = res["controller"][low]["overall"], res["static"][low]["overall"]
    return (
        f"Serving the digits VLM at {low} req/s on {d['machine'].get('cpu', '?')}: goodput "
        f"{c['goodput_rps']:.1f} req/s with the controller against {s['goodput_rps']:.1f} with the "
        f"best static config (`{rel(paths[0])}`, {d.get('date', 'date ' + NOT_RECORDED)})."
    )


def headline_digits(paths: Sequence[Path]) -> str:
    from fastctrl.digits.report import knob_table
    from fastctrl.profile.table import Profile

    t = knob_table(Profile.load(paths[0]))
    rows = {r["config"]: r for r in t["rows"]}
    full, cheap = rows["full"], rows["cheapest"]
    return (
        f"The digits VLM (real handwritten scans): {full['accuracy']:.3f} exact match at the full "
        f"config, {cheap['accuracy']:.3f} at the cheapest, a {t['latency_span']:.2f}x latency span "
        f"on {t['requests']} {t['split']} requests (`{DIGITS_PROFILE}`)."
    )


def headline_e5_digits(paths: Sequence[Path]) -> str:
    doc = read_json(paths[0])
    final = doc["statistics"]["metrics"]["final_utility"]["methods"]
    best = max(final, key=lambda m: final[m]["point"])
    static = doc["statistics"]["baselines"]["best_static"]["final_utility"]["value"]
    e = final[best]
    return (
        f"E5 on the digits profile ({len(final)} methods x {e['n']} seeds, "
        f"{doc['meta']['max_env_steps']:,} env_steps): best test utility {best} "
        f"{e['point']:.3f} [{e['low']:.3f}, {e['high']:.3f}] against {static:.3f} for the best "
        f"static config; {below_static(final, static)} (`{rel(paths[0])}`)."
    )


def below_static(final: dict[str, Any], static: float) -> str:
    """Which methods' IQM is below the best static config, in words (computed, not typed)."""
    below = [m for m, e in final.items() if e["point"] < static]
    return f"below it: {', '.join(below)}" if below else "every method at or above it"


def headline_digits_live(paths: Sequence[Path]) -> str:
    off = read_json(paths[0])
    gains, att = [], []
    for b in off["budgets_ms"]:
        r = off["per_budget"][f"{b:g}"]
        gains.append(100 * (r["controller"]["accuracy"] - r["best_static"]["accuracy"]))
        att.append(r["controller"]["slo_attainment"])
    ratios = [b / off["reference_ms"] for b in off["budgets_ms"]]
    return (
        f"The shipped digits controller live on {off['n_requests']} unseen pages at "
        f"{ratios[0]:.2f}-{ratios[-1]:.2f}x budgets: {sum(gains) / len(gains):+.1f} points of "
        f"exact match over the best static config on average (at each budget "
        f"{' / '.join(f'{g:+.1f}' for g in gains)}), deadline attainment "
        f"{min(att):.0%}-{max(att):.0%} (`{rel(paths[0])}`)."
    )


def headline_ray(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    return (
        f"Ray: a profiling sweep on {d['profile']['ray']['workers']} workers ran "
        f"{d['profile']['speedup_after_startup']:.2f}x as fast as one local process after "
        f"start-up (`{rel(paths[0])}`)."
    )


def headline_serve_overhead(paths: Sequence[Path]) -> str:
    d = read_json(paths[0])
    return (
        f"The controller's decision inside the server: {d['decision_ms_p50']:.2f} ms p50, "
        f"{100 * d['decision_share_of_client_latency_p50']:.1f}% of a request's latency "
        f"(`{rel(paths[0])}`)."
    )


def headline_engines(paths: Sequence[Path]) -> str:
    doc = read_json(paths[0])
    b1 = {
        p: v["stats"]["median"]
        for (p, b, c), v in _benchmarks_by(doc, "provider", "batch", "cache").items()
        if c == "warm" and b == "1"
    }
    ours = {p: t for p, t in b1.items() if p.startswith("fastctrl-int8")}
    best = min(ours, key=ours.__getitem__)
    ort = b1.get("onnxruntime-dynamic-int8")
    vs = f", {ort / ours[best]:.2f}x as fast as onnxruntime's dynamic int8" if ort else ""
    return (
        f"One decision (B=1, one thread) in {ours[best] * 1e6:.1f} us with `{best}`{vs} "
        f"(`{rel(paths[0])}`)."
    )


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Block:
    """One rendered block: its source files (relative to the repo root) and how to render them."""

    sources: tuple[str, ...]
    render: Callable[[Sequence[Path]], str]
    #: False for a block whose result file is still being produced: it may be on no page yet
    #: (once its markers are on a page, its file must exist like any other's)
    on_a_page: bool = True


def _tune_sources() -> tuple[str, ...]:
    return tuple(f"bench/results/tune/{m}/{f}" for m in TUNE_METHODS for f in TUNE_FILES)


#: block name -> (source files, render function); the page is wherever the markers are
# --------------------------------------------------------------------------- training


def provenance_caption(sources: Sequence[str], meta: dict[str, Any]) -> str:
    """The caption of a file that records ``fastctrl.sysinfo.provenance``."""
    m = meta.get("machine") or {}
    return caption(
        sources,
        command=meta.get("command"),
        machine=machine_text(m.get("cpu"), m.get("cpu_isa")),
        date=meta.get("date"),
        commit=meta.get("commit"),
    )


def render_grpo_variants(paths: Sequence[Path]) -> str:
    """GRPO variants on validation (bench/grpo_variants.py): best and final utility, SLO."""
    doc = read_json(paths[0])
    rows = []
    for name, v in doc["variants"].items():
        rows.append(
            [
                name,
                f"{v['val_best']:.3f} @ {v['val_best_env_steps']:,}",
                f"{v['val_final']:.3f}",
                f"{v['val_best'] - v['val_final']:.3f}",
                f"{v['val_best_slo']:.1%} -> {v['val_final_slo']:.1%}",
                f"{v['val_best_static']:.3f}",
            ]
        )
    header = [
        "variant",
        "validation utility: best @ env_steps",
        "final",
        "best - final",
        "SLO violation: at best -> final",
        "best static (val)",
    ]
    return "\n".join([*table(header, rows), "", provenance_caption([rel(paths[0])], doc["meta"])])


def render_digits_shipped(paths: Sequence[Path]) -> str:
    """The shipped digits controller: the E5 methods' validation gains (what chose it) and
    test utility (IQM [95% CI] over seeds), from its ``selection.json``."""
    sel = read_json(paths[0])
    chosen = sel["chosen"]
    rows = []
    for m, test in sel["e5_test_utility"].items():
        val = sel["methods_validation"].get(m)
        rows.append(
            [
                f"**{m}**" if m == chosen["method"] else m,
                f"{val['val_gain_deployed']:+.4f}" if val else "(trains no controller)",
                f"{val['val_gain_raw']:+.4f}" if val else "",
                f"{test['point']:.3f} [{test['low']:.3f}, {test['high']:.3f}]",
            ]
        )
    by_method: dict[str, list[dict[str, Any]]] = {}
    for c in sel["candidates"]:
        by_method.setdefault(c["method"], []).append(c)
    for row in rows:
        runs = by_method.get(row[0].strip("*"), [])
        raw = [c["test_utility_raw"] for c in runs if c.get("test_utility_raw") is not None]
        dep = [c["test_utility_deployed"] for c in runs]
        row.append(f"{sum(raw) / len(raw):.3f}" if raw else "")
        row.append(f"{sum(dep) / len(dep):.3f}" if dep else "")
    header = [
        "method",
        "validation gain over best static, deployed (mean over seeds)",
        "same, raw controller",
        "test utility, IQM [95% CI]",
        "test utility raw (mean over seeds, for the record)",
        "deployed",
    ]
    lines = [
        f"Shipped: **{chosen['method']}**, seed {chosen['seed']} (its deployed validation gain "
        f"{chosen['val_gain_deployed']:+.4f}; {chosen['cells_policy']} of {chosen['cells']} "
        "fallback cells keep the controller).",
        "",
        *table(header, rows),
        "",
        provenance_caption([rel(paths[0])], sel),
    ]
    return "\n".join(lines)


def render_digits_live(paths: Sequence[Path]) -> str:
    """Live on unseen digits pages: the shipped controller against the best static and the
    full config per budget, with the latency guardrail off and on."""
    off, on = (read_json(p) for p in paths)
    rows = []
    for b in off["budgets_ms"]:
        key = f"{b:g}"
        r_off, r_on = off["per_budget"][key], on["per_budget"][key]
        ratio = b / off["reference_ms"] if off.get("reference_ms") else None
        st = r_off["best_static"]
        rows.append(
            [
                f"{ratio:.2f}x ({b:.1f} ms)" if ratio else f"{b:.1f} ms",
                f"{r_off['controller']['accuracy']:.3f}",
                f"{r_on['controller']['accuracy']:.3f}",
                f"{st['accuracy']:.3f}",
                f"{r_off['full']['accuracy']:.3f}",
                f"{100 * (r_off['controller']['accuracy'] - st['accuracy']):+.1f}",
                f"{r_off['controller']['slo_attainment']:.1%}",
                f"{r_on['controller']['slo_attainment']:.1%}",
                f"{st['slo_attainment']:.1%}",
            ]
        )
    header = [
        "budget",
        "controller accuracy (guardrail off)",
        "(on)",
        "best static",
        "full",
        "controller - static, points (off)",
        "controller attainment (off)",
        "(on)",
        "best static attainment",
    ]
    n = off["n_requests"]
    lines = [
        f"{n} pages per budget; accuracy = {off['metric']}; attainment = share answered within "
        f"the budget; guardrail on: {on['args'].get('guardrail')} quantile, "
        f"{on.get('guardrail_replaced', 0)} decisions replaced.",
        "",
        *table(header, rows),
        "",
        provenance_caption([rel(p) for p in paths], off),
    ]
    return "\n".join(lines)


def render_fallback_cost(paths: Sequence[Path]) -> str:
    """The safe fallback's cost per decision, each engine with and without its table."""
    doc = read_json(paths[0])
    rows = []
    for name, r in doc["results"].items():
        us = r["us"]
        rows.append(
            [
                name,
                f"{us['hook path without']:.1f}",
                f"{us['hook path with']:.1f}",
                f"{r['hook_path_added_us']:+.1f}",
                f"{r['hook_path_ratio']:.2f}x",
                f"{r['decide_ratio']:.2f}x",
            ]
        )
    header = [
        "engine, batch",
        "hook path us, no table",
        "with the table",
        "added us",
        "ratio",
        "public decide(): ratio",
    ]
    not_run = "; ".join(f"{k}: {v}" for k, v in doc.get("not_run", {}).items())
    return "\n".join(
        [
            f"The shipped digits controller ({doc['cells_policy']} of {doc['cells']} cells keep "
            f"it), one thread, medians of calls interleaved with and without the table; host "
            f"load average {doc['load_average_1min']:.1f} when it ran. Not run: {not_run}.",
            "",
            *table(header, rows),
            "",
            provenance_caption([rel(paths[0])], doc["meta"]),
        ]
    )


REGISTRY: dict[str, Block] = {
    "serve.loadtest": Block(("bench/results/loadtest/loadtest.json",), render_loadtest),
    "serve.loadtest_run2": Block(("bench/results/loadtest_run2/loadtest.json",), render_loadtest),
    "serve.loadtest_batch4": Block(
        ("bench/results/loadtest_batch4/loadtest.json",), render_loadtest
    ),
    "serve.overhead": Block(("bench/results/bench_serve_overhead.json",), render_serve_overhead),
    "tune.picks": Block(_tune_sources(), render_tune),
    **{
        f"tune.{m}": Block(
            tuple(f"bench/results/tune/{m}/{f}" for f in TUNE_FILES),
            render_tune_method,
        )
        for m in TUNE_METHODS
    },
    "digits.training": Block(("fastctrl/digits/pretrained/training.json",), render_digits_training),
    "digits.knobs": Block((DIGITS_PROFILE, DIGITS_SWEEP), render_digits_knobs),
    "digits.headroom": Block((DIGITS_PROFILE, DIGITS_SWEEP), render_digits_headroom),
    "digits.answer_path": Block(("bench/results/bench_answer_path.json",), render_answer_path),
    "digits.tokens": Block(("bench/results/bench_digits_tokens.json",), render_digits_tokens),
    "ray.bench": Block(("bench/results/bench_ray.json",), render_ray),
    "engines.bench": Block(("bench/results/bench_engines.json",), render_engines),
    "hook.bench": Block(("bench/results/bench_hook.json",), render_hook),
    "engines.fallback": Block(("bench/results/bench_fallback.json",), render_fallback_cost),
    "grpo.variants": Block(("bench/results/grpo_variants.json",), render_grpo_variants),
    "digits.shipped": Block(("fastctrl/digits/controller/selection.json",), render_digits_shipped),
    "digits.live": Block(
        (
            "bench/results/digits_live/guardrail_off/live_eval.json",
            "bench/results/digits_live/guardrail_on/live_eval.json",
        ),
        render_digits_live,
    ),
    **{
        f"e5.{p}": Block((f"bench/results/e5/{p}/e5_statistics.json",), render_e5, on_a_page=False)
        for p in E5_PROFILES
    },
    "readme.serve": Block(("bench/results/loadtest/loadtest.json",), headline_serve),
    "readme.serve_overhead": Block(
        ("bench/results/bench_serve_overhead.json",), headline_serve_overhead
    ),
    "readme.digits": Block((DIGITS_PROFILE,), headline_digits),
    "readme.e5_digits": Block(("bench/results/e5/digits/e5_statistics.json",), headline_e5_digits),
    "readme.digits_live": Block(
        ("bench/results/digits_live/guardrail_off/live_eval.json",), headline_digits_live
    ),
    "readme.ray": Block(("bench/results/bench_ray.json",), headline_ray),
    "readme.engines": Block(("bench/results/bench_engines.json",), headline_engines),
}


# --------------------------------------------------------------------------- pages


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def pages(root: Path = ROOT) -> list[Path]:
    found: set[Path] = set()
    for g in PAGE_GLOBS:
        found.update(p for p in root.glob(g) if p.is_file())
    return sorted(found)


def render_block(name: str, registry: dict[str, Block] = REGISTRY, root: Path = ROOT) -> str:
    if name not in registry:
        raise RenderError(f"block {name!r} is not in docs/render.py's REGISTRY")
    block = registry[name]
    paths = [root / s for s in block.sources]
    missing = [s for s in block.sources if not (root / s).is_file()]
    if missing:
        raise RenderError(f"block {name!r}: source file missing: {', '.join(missing)}")
    # blank lines around the body: Markdown would read a table right after the HTML comment
    # as part of the comment's HTML block
    return "\n" + block.render(paths).strip("\n") + "\n\n"


def process(
    page: Path, check: bool, registry: dict[str, Block] = REGISTRY, root: Path = ROOT
) -> list[str]:
    """Render ``page``'s blocks; with ``check`` only compare. Returns the problems found."""
    text = page.read_text()
    problems: list[str] = []
    closed = {m.group("name") for m in BLOCK.finditer(text)}
    for m in OPEN.finditer(text):
        if m.group("name") not in closed:
            problems.append(f"{rel(page)}: block {m.group('name')!r} has no closing marker")
    cache: dict[str, str] = {}

    def sub(m: re.Match[str]) -> str:
        name = m.group("name")
        try:
            body = cache.setdefault(name, render_block(name, registry, root))
        except RenderError as e:
            problems.append(f"{rel(page)}: {e}")
            return m.group(0)
        if check and body != m.group("body"):
            problems.append(
                f"{rel(page)}: block {name!r} differs from what its source renders "
                f"({', '.join(registry[name].sources)}); run python docs/render.py"
            )
        return f"<!-- render:{name} -->\n{body}<!-- /render:{name} -->"

    new = BLOCK.sub(sub, text)
    if not check and new != text and not problems:
        page.write_text(new)
    return problems


def used_blocks(root: Path = ROOT) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for page in pages(root):
        for m in BLOCK.finditer(page.read_text()):
            out.setdefault(m.group("name"), []).append(page)
    return out


def run(check: bool, registry: dict[str, Block] = REGISTRY, root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    for page in pages(root):
        problems += process(page, check, registry, root)
    used = used_blocks(root)
    for name in registry:
        if name not in used and registry[name].on_a_page:
            problems.append(f"block {name!r} of the REGISTRY is on no page")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare only; exit 1 on any difference")
    args = p.parse_args(argv)
    problems = run(args.check)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
