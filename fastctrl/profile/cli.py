"""``python -m fastctrl.profile``: sweep a config grid on a VLM and write a training profile.

Default: a tiny random-weight LLaVA-OLMoE on the built-in synthetic image/question set, grid
max_crops [1, 2, 4] x top_k [1, 2, 4] x num_active_blocks [2, 3, 4]; a few minutes on a CPU.
``--model`` also takes a hub id or a ``save_pretrained`` directory of any supported family
(loaded with ``from_pretrained`` and its own processor / chat template), ``--dataset`` a
local JSONL / CSV / ``save_to_disk`` directory / image folder or a hub dataset name
(:mod:`fastctrl.runtime.datasets`); ``--configs random N`` / ``lhs N`` measures a sample of
the grid per request (always the full and the cheapest config).
``--output_dir DIR`` gets the table ``DIR/profile.parquet`` (``--table_format csv``:
``profile.csv``), its feature store (``profile.features.safetensors``) and a
``profile.sweep.json`` sidecar (grid, settings, p50/p95 per config, what the sweep cost):
what ``python -m fastctrl.train --profile DIR`` reads. An interrupted run resumes where it stopped
(``--no_resume`` starts over). ``--backend ray`` sweeps on a Ray cluster, one model replica
per worker (:mod:`fastctrl.profile.ray_sweep`), into the same files.

Quality: with ``--metric auto`` it is the dataset's standard metric when its name is known
(VQA accuracy for VQAv2 / TextVQA, ANLS for DocVQA, relaxed accuracy for ChartQA, ...), exact
match for other data with answers, else agreement with the full configuration's generated
tokens. A random-weight model cannot answer anything, so the tiny models ignore the synthetic
answers by default (``--use_answers`` to score them anyway): their quality column is the
agreement proxy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import cli
from .options import ProfileArgs, args_space, load, load_data

PROG = "python -m fastctrl.profile"


def main(argv: Sequence[str] | None = None) -> int:
    return cli.execute(
        run, cli.parse(ProfileArgs, argv, prog=PROG), bad_input=(*cli.BAD_INPUT, TypeError)
    )


def run(args: ProfileArgs) -> int:
    """Sweep and write the profile (the parsed command line of ``fastctrl profile``)."""
    cli.setup_logging(args.quiet)
    import torch

    from .sweep import run_sweep

    if args.execution.backend == "ray":
        from .ray_sweep import WorkerError, ray_sweep

        data, name, n = load_data(args)
        try:
            res = ray_sweep(args, data, dataset_name=name, total=n)
        except WorkerError as e:
            return cli.failure(str(e))
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        model, processor, data, name, n = load(args)
        res = run_sweep(
            model,
            processor,
            data,
            args_space(args, model),
            args.table_path,
            resume=args.resume,
            quiet=args.quiet,
            total=n,
            dataset_name=name,
            **args.sweep_settings(),
        )
    cost = json.loads(res.sidecar_path.read_text())["cost"]
    if res.profile is None:
        print(
            f"profile: {res.table_path} written, but some configs were measured for no "
            "request: profile more requests or use a smaller grid before training on it"
        )
    else:
        print(
            f"profile: {res.table_path} ({res.profile.n_requests} requests x "
            f"{res.profile.n_configs} configs, {res.profile.imputed_share:.0%} of cells "
            f"imputed; {res.resumed} resumed, {res.measured} measured)"
        )
    print(f"features: {res.table_path.with_suffix('')}.features.safetensors")
    print(
        f"sweep cost: {cost['wall_s']:.1f} s wall, {cost['answer_calls']} answer calls "
        f"({cost['timed_s']:.1f} s timed); summary: {res.sidecar_path}"
    )
    return 0
