"""Case families. Each module registers its operations and a generator of case drafts.

Importing this package imports every family module; a module whose reference code has not
landed (ImportError) is skipped here and its family is simply absent from generation.
"""

from __future__ import annotations

import importlib

FAMILY_MODULES = (
    "qparams_cases",
    "paddle_kernels",
    "onnx_kernels",
    "slim_kernels",
    "torch_kernels",
    "observer_cases",
    "quanter_cases",
    "lowbit_cases",
    "diagnose_cases",
    "xf_observer_cases",
    "ort_int_cases",
    "tf_kernels",
    "litert_kernels",
    "openvino_kernels",
    "weight_only_cases",
)

for _mod in FAMILY_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_mod}")
    except (ModuleNotFoundError, ImportError) as _exc:  # family or its reference not there yet
        if isinstance(_exc, ModuleNotFoundError) and not (_exc.name or "").startswith(
                ("refquant", __name__)):
            raise
