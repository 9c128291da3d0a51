"""Host facts recorded beside measured latencies (profile sidecars, benchmarks): a latency
means little without the machine it was measured on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def _cpuinfo() -> dict[str, str]:
    """The first processor's ``/proc/cpuinfo`` fields (empty where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


#: The /proc/cpuinfo flags that decide which kernels run (ours and torch's).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "amx_tile")


def cpu_id() -> dict[str, Any]:
    """CPU family / model numbers and the ISA flags of :data:`ISA_FLAGS` it has (Linux;
    empty elsewhere): two hosts with the same model name can still differ here."""
    fields = _cpuinfo()
    out: dict[str, Any] = {}
    if "cpu family" in fields and "model" in fields:
        out["cpu_family_model"] = f"{fields['cpu family']}/{fields['model']}"
    if "flags" in fields:
        have = set(fields["flags"].split())
        out["cpu_isa"] = [f for f in ISA_FLAGS if f in have]
    return out


def machine(device: Any = "cpu") -> dict[str, Any]:
    """CPU model (family / model, ISA flags), core count, platform and library versions; the
    GPU's name on CUDA."""
    import torch
    import transformers

    out = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **cpu_id(),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out


def git_commit(root: str | Path | None = None) -> str | None:
    """The checkout's commit (``+dirty`` when tracked files differ from it), or ``None``
    outside a git checkout or without git."""
    import subprocess

    cwd = Path(root) if root is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--"], cwd=cwd, capture_output=True
        ).returncode
    except OSError:
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def provenance(command: str) -> dict[str, Any]:
    """What a result file records about how it was made: the command, the date, the commit
    and the CPU (model and ISA flags), so a rendered table can name them."""
    import time

    return {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit(),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), **cpu_id()},
    }


def command_line(module: str) -> str:
    """This process's command as a user would type it: ``python -m <module> ...`` when run as
    a module, ``python <module> ...`` when ``module`` is a script's path (``bench/x.py``), else
    the console script's name and its arguments (``fastctrl compare ...``)."""
    import shlex
    import sys

    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    # `python -m pkg.mod` puts the module's file in argv[0]; a console script its own name
    if module.endswith(".py"):  # a script: `python path/to/script.py ...`
        head = f"python {module}"
    elif argv0.endswith(".py") or argv0 in ("-m", "-c", ""):
        head = f"python -m {module}"
    else:
        head = argv0
    return " ".join([head, *(shlex.quote(a) for a in sys.argv[1:])])
