"""Names for the instruction-set variants of CPU kernels that choose their code at run time.

Some CPU libraries pick a code path from the CPU's features when they run, and the paths do
not round alike. refquant emulates each path and names it by instruction set; a function
that depends on it takes ``isa=`` with one of these values:

* ``"avx2"``: the path of an x86-64 CPU without AVX-512 (the project's AMD EPYC machines);
  the default everywhere, so results never change with the machine they are computed on;
* ``"avx512"``: the path an Intel CPU with AVX-512 gets;
* ``"host"``: whichever of the two this machine's libraries would take
  (:func:`host_isa`), for callers comparing with a framework running here.

Which library and which kernels differ is documented where each variant is emulated
(see ``docs/cpu-variants.md``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Literal

__all__ = ["ISA", "ISAS", "check_isa", "host_isa"]

ISA = Literal["avx2", "avx512"]
ISAS: tuple[str, ...] = ("avx2", "avx512")

# MKL's AVX-512 kernels need the Skylake-server subset of AVX-512.
_AVX512_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")


@lru_cache(maxsize=1)
def _cpu() -> tuple[str, frozenset[str]]:
    """``(vendor_id, flags)`` of this CPU from ``/proc/cpuinfo``; ``("", flags)`` from
    NumPy's run-time CPU feature report where ``/proc/cpuinfo`` is not readable."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            vendor, flags = "", ""
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags" and not flags:
                    flags = value
                if vendor and flags:
                    break
        return vendor, frozenset(flags.split())
    except OSError:
        return "", _numpy_flags()


def _numpy_flags() -> frozenset[str]:
    import importlib

    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            feats = importlib.import_module(mod).__cpu_features__
        except (ImportError, AttributeError):
            continue
        return frozenset(k.lower() for k, on in feats.items() if on)
    return frozenset()


def host_isa() -> str:
    """The variant this machine's libraries take: ``"avx512"`` or ``"avx2"``.

    ``"avx512"`` when the CPU reports AVX-512 F, CD, BW, DQ and VL, its vendor is Intel
    (``GenuineIntel``; unknown when the features come from NumPy's report, which is then
    taken as Intel), and ``MKL_ENABLE_INSTRUCTIONS`` (MKL's switch that caps its code path,
    e.g. ``AVX2``) is unset or names an AVX-512 level. Otherwise ``"avx2"``. AMD CPUs with
    AVX-512 are reported as ``"avx2"``: which MKL kernel they get has not been measured.
    """
    vendor, flags = _cpu()
    if vendor not in ("", "GenuineIntel"):
        return "avx2"
    if not all(f in flags for f in _AVX512_FLAGS):
        return "avx2"
    cap = os.environ.get("MKL_ENABLE_INSTRUCTIONS", "").strip().upper()
    if cap and not cap.startswith("AVX512"):
        return "avx2"
    return "avx512"


def check_isa(isa: Any, name: str = "isa") -> str:
    """``isa`` checked and resolved: ``"avx2"`` or ``"avx512"`` (``"host"``: :func:`host_isa`).

    ``TypeError`` for a non-string, ``ValueError`` for another string, naming ``name``.
    """
    if not isinstance(isa, str):
        raise TypeError(f"{name} must be 'avx2', 'avx512' or 'host', got {type(isa).__name__} "
                        f"{isa!r}")
    if isa == "host":
        return host_isa()
    if isa not in ISAS:
        raise ValueError(f"{name} must be 'avx2', 'avx512' or 'host', got {isa!r}")
    return isa
