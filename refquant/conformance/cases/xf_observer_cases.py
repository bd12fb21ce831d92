"""Observer cases of the other frameworks' families (torch.ao, ...), bug for bug.

Operation ``observer.<family>.<ClassName>`` (e.g. ``observer.torch.HistogramObserver``):
inputs ``batch0``, ``batch1``, ... (float32, observed in order); params = the constructor
arguments in the family's own spelling -> ``scale`` (float32, the family's convention:
torch's step) and ``zero_point`` (int64), compared bit for bit. The batch sequences grow and
shrink the range, so running statistics, moving averages and histogram re-binning are all
exercised.

Reference: the family's class in :mod:`refquant.observers.families`. Targets: ``torch``
runs ``torch.ao.quantization``'s observers on the same batches.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...observers.families import observer_classes
from ..registry import CaseDraft, register_family, register_op
from ._inputs import distribution

#: family -> class name -> the constructor arguments each case uses (one case per entry,
#: distribution and batch count)
PARAMS: dict[str, dict[str, tuple[dict[str, Any], ...]]] = {
    "torch": {
        "MinMaxObserver": (
            {"dtype": "quint8", "qscheme": "per_tensor_affine"},
            {"dtype": "qint8", "qscheme": "per_tensor_symmetric"},
            {"dtype": "quint8", "qscheme": "per_tensor_affine", "reduce_range": True},
            {"dtype": "qint8", "qscheme": "per_tensor_affine", "quant_min": -8,
             "quant_max": 7},
        ),
        "MovingAverageMinMaxObserver": (
            {"dtype": "quint8", "qscheme": "per_tensor_affine", "averaging_constant": 0.01},
            {"dtype": "qint8", "qscheme": "per_tensor_symmetric", "averaging_constant": 0.3},
        ),
        "PerChannelMinMaxObserver": (
            {"dtype": "qint8", "qscheme": "per_channel_symmetric", "ch_axis": 0},
            {"dtype": "quint8", "qscheme": "per_channel_affine", "ch_axis": 1},
        ),
        "MovingAveragePerChannelMinMaxObserver": (
            {"dtype": "qint8", "qscheme": "per_channel_symmetric", "ch_axis": 1,
             "averaging_constant": 0.1},
        ),
        "HistogramObserver": (
            {"dtype": "quint8", "qscheme": "per_tensor_affine", "bins": 256},
            {"dtype": "qint8", "qscheme": "per_tensor_symmetric", "bins": 128},
        ),
    },
}

#: distributions and batch counts each entry runs on
_DISTS = ("normal", "heavy", "relu", "constant_outlier")
_GROWTH = (1.0, 3.0, 0.25)


def _classes(family: str) -> dict[str, type]:
    try:
        return observer_classes(family)
    except ImportError:
        return {}


def _make_ref(family: str, name: str) -> Any:
    def ref(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple[np.ndarray, ...]:
        with warnings.catch_warnings():  # the framework's deprecation warnings, reproduced
            warnings.simplefilter("ignore")
            obs = _classes(family)[name](**p)
            for i in range(len(inputs)):
                obs.observe(inputs[f"batch{i}"])
            qp = obs.compute()
        return (np.asarray(qp.scale, np.float32), np.asarray(qp.zero_point, np.int64))
    ref.__doc__ = (f"refquant.observers.{family}.{name}: observe each batch, compute "
                   f"(the framework's scale and zero point).")
    return ref


def _available() -> dict[str, dict[str, tuple[dict[str, Any], ...]]]:
    """The entries whose class exists in this build."""
    out: dict[str, dict[str, tuple[dict[str, Any], ...]]] = {}
    for family, entries in PARAMS.items():
        classes = _classes(family)
        out[family] = {name: ps for name, ps in entries.items() if name in classes}
    return out


for _family, _entries in _available().items():
    for _name in _entries:
        register_op(f"observer.{_family}.{_name}", "observer", ("scale", "zero_point"))(
            _make_ref(_family, _name))


@register_family("xf_observers", requires=("refquant.observers.torch",))
def generate() -> Iterator[CaseDraft]:
    for family, entries in _available().items():
        for oi, (name, param_sets) in enumerate(entries.items()):
            for pi, params in enumerate(param_sets):
                for di, dist in enumerate(_DISTS):
                    nb = 1 + (di + pi + oi) % 3
                    seed = 5000 + 101 * oi + 31 * pi + 7 * di
                    batches = {f"batch{b}": distribution(dist, seed + b, (16, 24), _GROWTH[b])
                               for b in range(nb)}
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        profile = _classes(family)[name](**params).profile
                    yield CaseDraft(
                        id=f"xfobs.{family}.{name.lower()}.p{pi}.{dist}.n{nb}",
                        op=f"observer.{family}.{name}", inputs=batches, params=dict(params),
                        rule="bits", profile=profile,
                        tags=("observer", family, name, dist, f"batches{nb}"),
                        description=f"{family}.{name}({params}) on {nb} batch(es) of {dist}")
