"""Observer cases of the other frameworks' families (torch.ao, ...), bug for bug.

Operation ``observer.<family>.<ClassName>`` (e.g. ``observer.torch.HistogramObserver``):
inputs ``batch0``, ``batch1``, ... (float32, observed in order); params = the constructor
arguments in the family's own spelling (keys listed in :data:`COMPUTE_KEYS` go to
``compute()`` instead) -> the family's :data:`OUTPUTS`: the calibrated range where the
family exposes one (ONNX Runtime: ``compute_data()``'s ``low``/``high``; NNCF:
``compute_range()``'s ``min_values``/``max_values``), then ``scale`` (float32, the family's
convention: the step) and ``zero_point`` (int64), compared bit for bit. The batch sequences
grow and shrink the range, so running statistics, moving averages and histogram re-binning
are all exercised.

Reference: the family's class in :mod:`refquant.observers.families`. Targets: ``torch``
runs ``torch.ao.quantization``'s observers on the same batches, ``onnxruntime`` ORT's
calibrators (one ``collect_data`` call per batch) and ``compute_scale_zp``, ``nncf`` NNCF's
reducers and aggregators and its FakeQuantize parameter functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ... import profiles
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
    "onnxruntime": {
        "MinMaxCalibrater": (
            {},
            {"symmetric": True, "qtype": "int8"},
            {"moving_average": True, "averaging_constant": 0.3},
        ),
        "EntropyCalibrater": (
            {"num_bins": 128, "num_quantized_bins": 128},
            {"num_bins": 64, "num_quantized_bins": 16, "qtype": "int8"},
        ),
        "PercentileCalibrater": (
            {"num_bins": 2048, "percentile": 99.999, "symmetric": True, "qtype": "int8"},
            {"num_bins": 64, "percentile": 99.0, "symmetric": False},
        ),
        "DistributionCalibrater": (
            {"num_bins": 512, "scenario": "same"},
            {"num_bins": 1024, "scenario": "p3", "qtype": "int16"},
        ),
    },
    "nncf": {
        "MinMaxRangeEstimator": (
            {"mode": "symmetric"},
            {"mode": "asymmetric", "axes": 0},  # one reduction axis (fixtures hold scalars)
        ),
        "MeanMinMaxRangeEstimator": (
            {"mode": "symmetric"},
            {"mode": "asymmetric", "narrow_range": True},
        ),
        "MedianMinMaxRangeEstimator": (
            {"mode": "asymmetric"},
        ),
        "MeanNoOutliersRangeEstimator": (
            {"mode": "symmetric", "quantile_outlier_prob": 0.3},
        ),
        "MeanQuantileRangeEstimator": (
            {"mode": "asymmetric", "num_bits": 4},
        ),
    },
}

#: family -> output names (default: ``scale``, ``zero_point``); the first two are the
#: calibrated range read with :data:`RANGE_METHOD`
OUTPUTS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("low", "high", "scale", "zero_point"),
    "nncf": ("min_values", "max_values", "scale", "zero_point"),
}
RANGE_METHOD = {"onnxruntime": "compute_data", "nncf": "compute_range"}
#: family -> params keys passed to ``compute()`` rather than to the constructor
COMPUTE_KEYS: dict[str, tuple[str, ...]] = {"onnxruntime": ("qtype",)}
#: family -> first seed (so no two families draw the same batches)
_SEED_BASE = {"torch": 5000, "onnxruntime": 6000, "nncf": 7000}

#: distributions and batch counts each entry runs on
_DISTS = ("normal", "heavy", "relu", "constant_outlier")
_GROWTH = (1.0, 3.0, 0.25)


def _classes(family: str) -> dict[str, type]:
    try:
        return observer_classes(family)
    except ImportError:
        return {}


def split_params(family: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` -> (constructor arguments, ``compute()`` arguments) for ``family``."""
    keys = COMPUTE_KEYS.get(family, ())
    return ({k: v for k, v in params.items() if k not in keys},
            {k: v for k, v in params.items() if k in keys})


def _ctor(family: str, params: dict[str, Any]) -> dict[str, Any]:
    ctor = split_params(family, params)[0]
    if family == "nncf" and isinstance(ctor.get("axes"), int):  # fixture params are scalars
        ctor["axes"] = (ctor["axes"],)
    return ctor


def _make_ref(family: str, name: str) -> Any:
    def ref(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple[np.ndarray, ...]:
        with warnings.catch_warnings():  # the framework's deprecation warnings, reproduced
            warnings.simplefilter("ignore")
            obs = _classes(family)[name](**_ctor(family, p))
            for i in range(len(inputs)):
                obs.observe(inputs[f"batch{i}"])
            qp = obs.compute(**split_params(family, p)[1])
            rng: tuple[np.ndarray, ...] = ()
            if family in RANGE_METHOD:
                rng = tuple(np.asarray(v) for v in getattr(obs, RANGE_METHOD[family])())
        return (*rng, np.asarray(qp.scale, np.float32), np.asarray(qp.zero_point, np.int64))
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
        register_op(f"observer.{_family}.{_name}", "observer",
                    OUTPUTS.get(_family, ("scale", "zero_point")))(_make_ref(_family, _name))


def _registered(profile: str) -> bool:
    try:
        profiles.get_profile(profile)
    except ValueError:
        return False
    return True


def drafts(families: tuple[str, ...] | None = None) -> Iterator[CaseDraft]:
    """The drafts of ``families`` (all of :data:`PARAMS` when None) whose classes exist in
    this build, ``profile`` None where the class names no registered profile."""
    for family, entries in _available().items():
        if families is not None and family not in families:
            continue
        for oi, (name, param_sets) in enumerate(entries.items()):
            for pi, params in enumerate(param_sets):
                for di, dist in enumerate(_DISTS):
                    nb = 1 + (di + pi + oi) % 3
                    seed = _SEED_BASE[family] + 101 * oi + 31 * pi + 7 * di
                    batches = {f"batch{b}": distribution(dist, seed + b, (8, 24), _GROWTH[b])
                               for b in range(nb)}
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        obs = _classes(family)[name](**_ctor(family, params))
                    yield CaseDraft(
                        id=f"xfobs.{family}.{name.lower()}.p{pi}.{dist}.n{nb}",
                        op=f"observer.{family}.{name}", inputs=batches, params=dict(params),
                        rule="bits", profile=getattr(obs, "profile", None),
                        tags=("observer", family, name, dist, f"batches{nb}"),
                        description=f"{family}.{name}({params}) on {nb} batch(es) of {dist}")


@register_family("xf_observers", requires=("refquant.observers.torch",))
def generate() -> Iterator[CaseDraft]:
    # an observer case names a registered profile (SPEC.md): a family whose classes name
    # none (NNCF's "nncf", so far) has no fixtures yet (its target is checked on
    # drafts(("nncf",)) by tests/test_conformance_xf_targets.py)
    for draft in drafts():
        if draft.profile is not None and _registered(draft.profile):
            yield draft
