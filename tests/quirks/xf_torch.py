"""Quirks of torch.ao's observers (issue 15, item 5), in the shared registry format
(tests/quirks/render.py, ``load_xf``).

``real`` runs the installed torch's ``torch.ao.quantization.observer`` class on the input;
``bugforbug`` runs refquant's ``refquant.observers.torch`` class; ``canonical`` runs its
canonical counterpart (``refquant.observers.torch.canonical``) or, where refquant has no
counterpart class, states the value the documentation or the canonical math gives. Outcomes
are float32/int arrays or ``"raises <torch's exception class>"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

FRAMEWORK = "torch.ao (torch 2.13.0, CPU)"
REQUIRES = "torch"

_BASES = (TypeError, NotImplementedError, AssertionError, RuntimeError, ValueError)


def _outcome(fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``"raises X"`` with X the torch exception class it corresponds to."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except Exception as exc:  # noqa: BLE001 - an exception is a comparable outcome
        name = next((b.__name__ for b in _BASES if isinstance(exc, b)), type(exc).__name__)
        return f"raises {name}"


def _real_qparams(cls_name: str, batches: list[Any], **kw: Any) -> Any:
    def run() -> Any:
        import torch
        from torch.ao.quantization import observer as tao

        args = {k: getattr(torch, v) if k in ("dtype", "qscheme") else v
                for k, v in kw.items()}
        obs = getattr(tao, cls_name)(**args)
        for b in batches:
            obs(torch.from_numpy(np.array(b, np.float32)))
        scale, zp = obs.calculate_qparams()
        return scale.numpy().astype(np.float32), zp.numpy().astype(np.int64)
    return _outcome(run)


def _ours_qparams(cls_name: str, batches: list[Any], **kw: Any) -> Any:
    def run() -> Any:
        from refquant.observers import torch as tobs

        obs = getattr(tobs, cls_name)(**kw)
        for b in batches:
            obs.observe(np.array(b, np.float32))
        scale, zp = obs.calculate_qparams()
        return np.asarray(scale, np.float32), np.asarray(zp, np.int64)
    return _outcome(run)


def _real_order(batches: list[Any], **kw: Any) -> Any:
    return (_real_qparams("HistogramObserver", batches, **kw),
            _real_qparams("HistogramObserver", batches[::-1], **kw))


def _ours_order(cls_name: str, batches: list[Any], **kw: Any) -> Any:
    return (_ours_qparams(cls_name, batches, **kw),
            _ours_qparams(cls_name, batches[::-1], **kw))


def _real_poisoned() -> Any:
    def run() -> Any:
        import torch
        from torch.ao.quantization import observer as tao

        obs = tao.HistogramObserver()
        first = _outcome(lambda: obs(torch.tensor([1.0, float("nan")])))
        second = _outcome(lambda: obs(torch.tensor([1.0, 2.0])))
        return first, second
    return run()


def _ours_poisoned(cls_name: str) -> Any:
    from refquant.observers import torch as tobs

    obs = getattr(tobs, cls_name)()
    first = _outcome(lambda: obs.observe(np.array([1.0, np.nan], np.float32)))
    second = _outcome(lambda: obs.observe(np.array([1.0, 2.0], np.float32)))
    return first, second


def _fixed_range(source: str) -> Any:
    if source == "real":
        import torch
        from torch.ao.quantization import observer as tao

        obs = tao.FixedQParamsObserver(1.0 / 128, 0, dtype=torch.qint8,
                                       qscheme=torch.per_tensor_symmetric)
        return np.int64([obs.quant_min, obs.quant_max])
    from refquant.observers import torch as tobs

    if source == "bugforbug":
        obs = tobs.FixedQParamsObserver(1.0 / 128, 0, dtype="qint8",
                                        qscheme="per_tensor_symmetric")
        return np.int64([obs.quant_min, obs.quant_max])
    can = tobs.CanonicalMinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric")
    return np.int64([can.quant_min, can.quant_max])


def _compute_dtype(source: str) -> Any:
    if source == "real":
        import torch
        from torch.ao.quantization import observer as tao

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs = tao.PlaceholderObserver(dtype=torch.float16, compute_dtype=torch.float16)
        return np.bool_(obs.is_dynamic)
    from refquant.observers import torch as tobs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = tobs.PlaceholderObserver(dtype="float16", compute_dtype="float16")
    return np.bool_(ours.is_dynamic if source == "bugforbug" else True)


_ORDER = [np.linspace(-1, 1, 4001) ** 3, np.linspace(-0.5, 1, 2001) ** 3 * 3]
_RELU_SMALL = [0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 2.0]

QUIRKS: list[dict[str, Any]] = [
    {
        "id": "T1",
        "title": "HistogramObserver's scale depends on the order of the batches",
        "input": "a = linspace(-1, 1, 4001)**3, b = 3 * linspace(-0.5, 1, 2001)**3 (float64, "
                 "then float32): (a, b) vs (b, a)",
        "documented": "a histogram of all the data seen; canonical: one exact histogram, the "
                      "same scale for every order",
        "real": lambda: _real_order(_ORDER),
        "bugforbug": lambda: _ours_order("HistogramObserver", _ORDER),
        "canonical": lambda: _ours_order("CanonicalHistogramObserver", _ORDER),
    },
    {
        "id": "T2",
        "title": "HistogramObserver searches on 2**bits(dtype) levels, ignoring reduce_range "
                 "and quant_min/quant_max",
        "input": "quint8, reduce_range=True (levels 0..127), "
                 "x = [0, 0, 0, .1, .2, .3, .4, .5, 1, 2]",
        "documented": "the L2 error of quantizing onto the grid used: 128 levels",
        "real": lambda: _real_qparams("HistogramObserver", [_RELU_SMALL],
                                      reduce_range=True),
        "bugforbug": lambda: _ours_qparams("HistogramObserver", [_RELU_SMALL],
                                           reduce_range=True),
        "canonical": lambda: _ours_qparams("CanonicalHistogramObserver", [_RELU_SMALL],
                                           reduce_range=True),
    },
    {
        "id": "T3",
        "title": "HistogramObserver accepts quint8 symmetric with reduce_range and returns "
                 "zero point 128 outside quant_min..quant_max = 0..127 (MinMaxObserver "
                 "raises NotImplementedError)",
        "input": "quint8, per_tensor_symmetric, reduce_range=True, x = [-1, 0.5, 2]",
        "documented": "a zero point inside [quant_min, quant_max]; canonical raises "
                      "ValueError",
        "real": lambda: _real_qparams("HistogramObserver", [[-1.0, 0.5, 2.0]],
                                      qscheme="per_tensor_symmetric", reduce_range=True),
        "bugforbug": lambda: _ours_qparams("HistogramObserver", [[-1.0, 0.5, 2.0]],
                                           qscheme="per_tensor_symmetric", reduce_range=True),
        "canonical": lambda: _ours_qparams("CanonicalHistogramObserver", [[-1.0, 0.5, 2.0]],
                                           qscheme="per_tensor_symmetric",
                                           reduce_range=True),
    },
    {
        "id": "T4",
        "title": "a NaN in HistogramObserver's first batch poisons it: min/max become NaN and "
                 "every later batch raises RuntimeError",
        "input": "batches [1, nan], then [1, 2] (outcome of each observe)",
        "documented": "canonical: the NaN batch is refused (ValueError), later batches are "
                      "observed",
        "real": _real_poisoned,
        "bugforbug": lambda: _ours_poisoned("HistogramObserver"),
        "canonical": lambda: _ours_poisoned("CanonicalHistogramObserver"),
    },
    {
        "id": "T5",
        "title": "HistogramObserver drops +-inf elements with a warning (the min/max "
                 "observers keep them)",
        "input": "x = [0, 1, inf]",
        "documented": "canonical: non-finite data raises ValueError unless ignore_nonfinite",
        "real": lambda: _real_qparams("HistogramObserver", [[0.0, 1.0, np.inf]]),
        "bugforbug": lambda: _ours_qparams("HistogramObserver", [[0.0, 1.0, np.inf]]),
        "canonical": lambda: _ours_qparams("CanonicalHistogramObserver",
                                           [[0.0, 1.0, np.inf]]),
    },
    {
        "id": "T6",
        "title": "torch.histc counts values whose (x - min) * bins overflows float32 in bin 0, "
                 "so HistogramObserver clips almost the whole range",
        "input": "x = [0, 1e36, 2e36] (all three counted in bin 0 of 2048)",
        "documented": "a histogram of the data: scale about 2e36 / 255",
        "real": lambda: _real_qparams("HistogramObserver", [[0.0, 1e36, 2e36]]),
        "bugforbug": lambda: _ours_qparams("HistogramObserver", [[0.0, 1e36, 2e36]]),
        "canonical": lambda: _ours_qparams("CanonicalHistogramObserver",
                                           [[0.0, 1e36, 2e36]]),
    },
    {
        "id": "T7",
        "title": "a range wider than float32's maximum gives HistogramObserver an empty "
                 "histogram and a NaN scale",
        "input": "x = [-3e38, 0, 3e38]",
        "documented": "canonical: the search runs on the data's histogram; the scale is "
                      "inf ((max - min) / 255 overflows in float32), not NaN",
        "real": lambda: _real_qparams("HistogramObserver", [[-3e38, 0.0, 3e38]]),
        "bugforbug": lambda: _ours_qparams("HistogramObserver", [[-3e38, 0.0, 3e38]]),
        "canonical": lambda: _ours_qparams("CanonicalHistogramObserver",
                                           [[-3e38, 0.0, 3e38]]),
    },
    {
        "id": "T8",
        "title": "qint32 affine: the zero point wraps through torch's int32 cast",
        "input": "MinMaxObserver(dtype=qint32, eps=1e-30), x = [-3, 2]",
        "documented": "zero_point = clamp(qmin - round(min / scale)), about 4.3e8",
        "real": lambda: _real_qparams("MinMaxObserver", [[-3.0, 2.0]], dtype="qint32",
                                      eps=1e-30),
        "bugforbug": lambda: _ours_qparams("MinMaxObserver", [[-3.0, 2.0]], dtype="qint32",
                                           eps=1e-30),
        "canonical": lambda: _ours_qparams("CanonicalMinMaxObserver", [[-3.0, 2.0]],
                                           dtype="qint32", eps=1e-30),
    },
    {
        "id": "T9",
        "title": "FixedQParamsObserver keeps quant_min/quant_max = 0..255 whatever the dtype",
        "input": "FixedQParamsObserver(1/128, 0, dtype=qint8): (quant_min, quant_max)",
        "documented": "the dtype's range, -128..127",
        "real": lambda: _fixed_range("real"),
        "bugforbug": lambda: _fixed_range("bugforbug"),
        "canonical": lambda: _fixed_range("canonical"),
    },
    {
        "id": "T10",
        "title": "PlaceholderObserver's deprecated compute_dtype does not set is_dynamic",
        "input": "PlaceholderObserver(dtype=float16, compute_dtype=float16).is_dynamic",
        "documented": "compute_dtype marks dynamic quantization: is_dynamic = True",
        "real": lambda: _compute_dtype("real"),
        "bugforbug": lambda: _compute_dtype("bugforbug"),
        "canonical": lambda: _compute_dtype("canonical"),
    },
    {
        "id": "T11",
        "title": "MinMaxObserver refuses symmetric reduce_range for quint8 only: uint8 gives "
                 "zero point 128 outside quant_min..quant_max = 0..127",
        "input": "MinMaxObserver(dtype=uint8, qscheme=per_tensor_symmetric, "
                 "reduce_range=True), x = [-1, 2]",
        "documented": "a zero point inside [quant_min, quant_max] (or quint8's "
                      "NotImplementedError); canonical raises ValueError",
        "real": lambda: _real_qparams("MinMaxObserver", [[-1.0, 2.0]], dtype="uint8",
                                      qscheme="per_tensor_symmetric", reduce_range=True),
        "bugforbug": lambda: _ours_qparams("MinMaxObserver", [[-1.0, 2.0]], dtype="uint8",
                                           qscheme="per_tensor_symmetric", reduce_range=True),
        "canonical": lambda: _ours_qparams("CanonicalMinMaxObserver", [[-1.0, 2.0]],
                                           dtype="uint8", qscheme="per_tensor_symmetric",
                                           reduce_range=True),
    },
]
