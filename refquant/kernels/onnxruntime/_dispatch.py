"""Instruction-set variants of ONNX Runtime's CPU integer kernels (MLAS).

MLAS chooses its integer GEMM and convolution kernels once per process from the CPU's
feature flags (``onnxruntime/core/mlas/lib/platform.cpp``, ``MLAS_PLATFORM::MLAS_PLATFORM``).
Only one numeric difference follows from the choice: whether the u8 x s8 dot products of
adjacent K pairs are summed into a saturating int16 first (``vpmaddubsw``) or accumulated
in int32 directly (``vpdpbusd`` / AMX ``tdpbusd``). Every other integer kernel emulated in
:mod:`refquant.kernels.onnxruntime` computes the same bits on every x86-64 CPU with AVX2.

Variants (``isa=``), each with the MLAS sources it is read from:

``"avx2"`` (saturating; emulated from source on CPUs that have VNNI)
    AVX2 without AVX-VNNI, e.g. AMD Zen 1-3: ``x86_64/QgemmU8X8KernelAvx2.S``
    (``MultiplyAccumulateRowU8S8Avx2``: ``vpmaddubsw`` then ``vpmaddwd`` with ones),
    ``x86_64/QgemvU8S8KernelAvx2.S`` (M = 1), ``x86_64/ConvSymKernelAvx2.S``; dispatch in
    ``qgemm_kernel_avx2.cpp`` and ``convsym.cpp`` (``MlasConvSymDispatchAvx2``).
``"avx2-vnni"`` (exact)
    AVX2 with AVX-VNNI (``vpdpbusd``): ``x86_64/QgemmU8S8KernelAvxVnni.S``,
    ``x86_64/QgemvU8S8KernelAvxVnni.S``, ``MlasConvSymDispatchAvxVnni``.
``"avx512"`` (saturating; emulated from source)
    AVX-512 F/BW/DQ/VL without AVX512-VNNI (Skylake-SP): ``x86_64/QgemmU8X8KernelAvx512Core.S``
    (``vpmaddubsw``), ``MlasConvSymDispatchAvx512Core``.
``"avx512-vnni"`` (exact)
    AVX512-VNNI (Cascade Lake and later): ``x86_64/QgemmU8S8KernelAvx512Vnni.S``,
    ``MlasConvSymDispatchAvx512Vnni``.
``"amx"`` (exact)
    AMX-TILE + AMX-INT8 enabled by the OS (Sapphire Rapids and later): ``qgemm_kernel_amx.cpp``
    (``tdpbusd``); convolutions keep the AVX512-VNNI kernels.
``"neon"`` (exact; emulated from source)
    ARM64 with the dot-product extension (``udot``/``sdot``, ``aarch64/QgemmU8X8KernelUdot.S``)
    or I8MM (``ummla``/``smmla``). The older no-dot NEON kernel (``QgemmU8X8KernelNeon.S``)
    is not emulated.
``"host"``
    The variant MLAS picks on this machine (:func:`host_isa`).

Only u8 activations times s8 weights go through the saturating instruction: u8 x u8 uses
16-bit operands (``vpmaddwd``, exact), s8 x s8 uses MLAS's portable C++ kernel on x86-64
without AVX-VNNI-INT8 (exact).
"""

from __future__ import annotations

import platform
from typing import Any

from .._isa import _cpu

__all__ = ["ISAS", "SATURATING_ISAS", "check_isa", "host_isa", "saturates"]

ISAS: tuple[str, ...] = ("avx2", "avx2-vnni", "avx512", "avx512-vnni", "amx", "neon")
#: variants whose u8 x s8 GEMM sums K pairs into a saturating int16 (``vpmaddubsw``)
SATURATING_ISAS: frozenset[str] = frozenset({"avx2", "avx512"})

_AVX512_CORE = ("avx512f", "avx512bw", "avx512dq", "avx512vl")


def host_isa() -> str:
    """The variant MLAS selects on this CPU, in ``platform.cpp``'s order.

    x86-64: ``"avx2"``; AVX-VNNI (``avx_vnni``) makes it ``"avx2-vnni"``; AVX-512 F/BW/DQ/VL
    override that with ``"avx512"``; AVX512-VNNI makes it ``"avx512-vnni"``; AMX-TILE and
    AMX-INT8 make the GEMM ``"amx"`` (MLAS also asks Linux for the AMX tile state with
    ``arch_prctl``; a kernel that refuses it leaves AVX512-VNNI, which computes the same bits).
    ARM64: ``"neon"``. ``ValueError`` on other machines and on x86-64 CPUs without AVX2, whose
    SSE kernels are not emulated.
    """
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "neon"
    _, flags = _cpu()
    if "avx2" not in flags:
        raise ValueError(
            f"isa='host': this CPU ({machine or 'unknown'}) has no AVX2; ONNX Runtime's kernels "
            f"for it are not emulated, pass one of {ISAS} explicitly"
        )
    isa = "avx2"
    if "avx_vnni" in flags:
        isa = "avx2-vnni"
    if all(f in flags for f in _AVX512_CORE):
        isa = "avx512"
        if "avx512_vnni" in flags:
            isa = "avx512-vnni"
    if "amx_tile" in flags and "amx_int8" in flags:
        isa = "amx"
    return isa


def check_isa(isa: Any, name: str = "isa") -> str:
    """``isa`` checked and resolved (``"host"`` becomes :func:`host_isa`)."""
    if not isinstance(isa, str):
        raise TypeError(f"{name} must be one of {ISAS + ('host',)}, got {type(isa).__name__} "
                        f"{isa!r}")
    if isa == "host":
        return host_isa()
    if isa not in ISAS:
        raise ValueError(f"{name} must be one of {ISAS + ('host',)}, got {isa!r}")
    return isa


def saturates(isa: str, a_signed: bool, b_signed: bool) -> bool:
    """Whether the GEMM of an ``isa`` (already resolved) sums u8 x s8 pairs in int16."""
    return isa in SATURATING_ISAS and not a_signed and b_signed
