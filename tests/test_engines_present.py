"""The core engines are built and usable here: a broken build fails the suite, it does not turn
the engine tests into skips.

``tests/test_int8_engine.py`` and ``tests/test_triton_engine.py`` import their engine at module
level (a missing engine is a collection error there); this file says plainly what is missing,
and checks the dispatcher offers every ISA kernel this machine can run, so a build that silently
dropped one (a compiler flag check failing, a CMake change) is a failure, not a shorter
parametrisation.

The expected ISAs follow the dispatcher's own rule (``detect_cpu`` in ``csrc/engine.cpp``), read
from ``/proc/cpuinfo``, whose flags Linux already clears for register states the OS does not
save (the XCR0 check of the C++):

- ``avx2``: the ``avx2`` flag;
- ``avx512_vnni``: ``avx512f``, ``avx512bw``, ``avx512vl`` and ``avx512_vnni`` together;
- ``amx``: all of the above, ``amx_tile`` and ``amx_int8``, and the OS grants this process the
  tile data state (``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``, the same request the
  extension makes; granting it twice is harmless).
"""

from __future__ import annotations

import ctypes
import os
import platform

import numpy as np
import pytest

from fastctrl import Controller, ControllerConfig, make_engine

# csrc/engine.cpp: request_amx_permission()
_SYS_ARCH_PRCTL_X86_64 = 158
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18


def cpu_flags() -> set[str]:
    """The CPU flags of the first processor in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def amx_permission_granted() -> bool:
    """What ``request_amx_permission()`` in csrc/engine.cpp returns in this process."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return (
        libc.syscall(
            ctypes.c_long(_SYS_ARCH_PRCTL_X86_64),
            ctypes.c_long(_ARCH_REQ_XCOMP_PERM),
            ctypes.c_long(_XFEATURE_XTILEDATA),
        )
        == 0
    )


def expected_isas(flags: set[str]) -> list[str]:
    """The ISA kernels the dispatcher must offer on a CPU with these flags (x86-64 Linux)."""
    out = ["scalar"]
    if "avx2" in flags:
        out.append("avx2")
    vnni = {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= flags
    if vnni:
        out.append("avx512_vnni")
    if vnni and {"amx_tile", "amx_int8"} <= flags and amx_permission_granted():
        out.append("amx")
    return out


def test_the_cpp_extension_is_built():
    import fastctrl._C as C  # an ImportError here: the C++ build is missing or broken

    assert os.path.isfile(C.__file__), C.__file__
    assert list(C.available_isas())[:1] == ["scalar"]


@pytest.mark.skipif(
    not os.path.exists("/proc/cpuinfo"), reason="the ISA rule reads the flags of /proc/cpuinfo"
)
def test_every_isa_this_cpu_has_is_available():
    import fastctrl._C as C

    want = expected_isas(cpu_flags())
    have = list(C.available_isas())
    missing = [i for i in want if i not in have]
    assert not missing, (
        f"this CPU and OS support {want}, the extension offers {have} (compiled in: "
        f"{list(C.compiled_isas())}); missing {missing}: were their kernels compiled in "
        "(CMakeLists.txt's compiler flag checks)?"
    )
    # and the dispatcher is not looser than the CPU either: nothing it cannot run
    assert set(have) <= set(want), (have, want)
    print(f"ISAs here: {have}")


def test_triton_is_importable():
    import triton  # an ImportError here: the [test] extra's triton is missing

    assert triton.__version__


@pytest.mark.parametrize("kind", ["int8", "triton"])
def test_make_engine_builds_each_core_engine(kind):
    """No EngineUnavailableError: the engine exists and decides (on CPU, triton through the
    interpreter that tests/conftest.py turns on)."""
    c = Controller(ControllerConfig(image_dim=16, text_dim=24)).eval()
    engine = make_engine(c, kind)
    rng = np.random.default_rng(0)
    img = rng.standard_normal((3, 16), dtype=np.float32)
    txt = rng.standard_normal((3, 24), dtype=np.float32)
    idx = engine.decide(img, txt, np.float32(c.config.ref_latency_ms))
    assert idx.shape == (3, len(c.space.names))
