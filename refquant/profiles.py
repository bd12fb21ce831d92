"""Profiles: one frozen rules object per profile, built here and nowhere else.

A *profile* says whose semantics an observer or quanter follows. Every decision in which two
profiles differ is a field of :class:`ProfileRules`; code elsewhere reads the fields of the
rules object it was built with and never compares profile names. Where a whole algorithm
differs (PaddleSlim's order-dependent running statistics versus refquant's exact, mergeable
ones), the family defines one subclass per profile and :class:`ProfileVariants` picks the
subclass once, at construction — the pattern of ``onnx/reference/ops`` (onnx/onnx,
``onnx/reference/ops/op_quantize_linear.py``: one class per opset, chosen once).

Profiles that exist today:

``"canonical"`` (:data:`CANONICAL`, the default)
    The math the PaddleSlim PTQ guide describes with its quirks fixed: statistics are exact,
    independent of batch order, and ``merge`` of shards equals one observer fed all the data.
``"paddleslim"`` (:data:`PADDLESLIM`)
    Bug for bug PaddleSlim 2.6.0 on Paddle 3.3.1 (docs/divergences.md lists every quirk).
``"torch"`` (:data:`TORCH`)
    Bug for bug torch 2.13's ``torch.ao.quantization`` observers on CPU
    (``refquant.observers.torch``). Fields that concern only PaddleSlim's quanters or
    Paddle's front end hold the value that describes torch (no such check, no such quirk).
``"onnxruntime"`` (:data:`ONNXRUNTIME`)
    Bug for bug onnxruntime 1.32's calibrators (``onnxruntime/quantization/calibrate.py``)
    and ``compute_scale_zp`` (``refquant.observers.onnxruntime``).
``"nncf"`` (:data:`NNCF`), ``"modelopt"`` (:data:`MODELOPT`)
    Bug for bug NNCF 3.4's range estimators (``refquant.observers.nncf``) and ModelOpt 0.47's
    calibrators (``refquant.observers.modelopt``).

Adding a framework (docs/architecture.md has the whole recipe): build its rules here with
:func:`register_profile`, then write the family's variant subclasses in new modules with
``class _TorchMinMax(MinMaxObserver, profile=TORCH)``. Old code gains no branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = [
    "ProfileRules", "ProfileVariants", "CANONICAL", "PADDLESLIM", "TORCH", "ONNXRUNTIME", "NNCF",
    "MODELOPT",
    "PROFILES", "Profile",
    "get_profile", "register_profile",
]

#: the profile names accepted by the PaddleSlim-family observers and quanters
Profile = Literal["canonical", "paddleslim"]


@dataclass(frozen=True)
class ProfileRules:
    """Every decision that differs between profiles (frozen; compared by identity of fields).

    Attributes
    ----------
    name:
        The profile's name as users pass it (``profile="paddleslim"``).
    reproduces:
        The original whose behaviour is reproduced bug for bug (``None``: canonical math).
    exact_merge:
        ``merge`` of two observers equals one observer fed both shards, bit for bit. Profiles
        that reproduce an order-dependent original cannot merge (``NotImplementedError``).
        Such statistics are exact and independent of batch order (maxima, exact sums,
        histogram counts), so the Paddle adapter computes them on the device, hands several
        batches over at once and sums them across ranks; without it, it reproduces the
        original's per-batch statistics and reduces the decided scales (MAX) across ranks.
    per_tensor_scale_shape:
        Shape of a per-tensor scale in quanter state and ``scales()``: ``()`` canonical,
        ``(1,)`` as Paddle/PaddleSlim parameters are created.
    moving_average_init:
        Initial ``state`` and ``accum`` of the moving-average abs-max quanter: ``0.0`` gives the
        bias-corrected moving average (first scale = the first abs-max); Paddle's layer starts
        both at ``1.0`` (first scale ``(rate + max|x|) / (rate + 1)``).
    drops_nonfinite:
        With ``ignore_nonfinite=True``: ``True`` drops NaN/Inf from the statistics; ``False``
        passes them through as the original's kernels do.
    channel_axes:
        Channel axes a channel-wise observer/quanter accepts (``None``: any axis of the input;
        PaddleSlim's channel-wise code only handles ``(0, 1)``).
    histogram_bins_cover_levels:
        Histogram observers require ``bins_count >= 2**(bits-1)`` (at least one bin per
        quantization level) so the threshold search is meaningful; PaddleSlim does not check.
    flush_subnormal_scales:
        Channel-wise abs-max quanter flushes subnormal scales to zero as Paddle's legacy CPU op
        does (FTZ/DAZ).
    updates_state_in_eval:
        Quanters keep updating their running state in evaluation mode (PaddleSlim's LSQ+
        initialisation ignores ``training``).
    honours_zero_point:
        Asymmetric quanters report their zero point; PaddleSlim's LSQ+ reports ``0``.
    requires_positive_init:
        PACT's ``init_value`` must be > 0 (a non-positive clip is meaningless); PaddleSlim does
        not check.
    paddle_api_quirks:
        The Paddle adapter's front end behaves as Paddle 3.3.1's ``paddle.quantization`` with
        PaddleSlim 2.6.0's observer layers, quirks included (docs/divergences.md Q54-Q61):
        ``QuantConfig`` resolution (name configs on ``full_name()``, exact types, the root
        never configured, Paddle's default mapping and leaves), the mode checks of
        ``PTQ``/``QAT.quantize``, Paddle's ``convert``, PaddleSlim's exceptions from an
        uncalibrated observer, weights observed on every forward. ``False``: the adapter's
        own rules (docs/adapter.md).
    requires_observed_scale:
        A quanter's ``scales()`` / ``qparams()`` (and the abs-max quanter's evaluation-mode
        ``forward``) raise ``ValueError`` until a training ``forward`` has set the scale: the
        initial value is a placeholder. PaddleSlim reports the placeholder (0.001, 1.0).
    symmetric_zero_points_none:
        The abs-max quanters' ``zero_points()`` return ``None`` as Paddle's and PaddleSlim's
        do; ``False``: an array of zeros, one per scale.
    channel_min_ndim:
        Least rank of a channel-wise quanter's input: ``1`` (any tensor with a channel axis);
        ``2`` as Paddle's ``fake_channel_wise_quantize_dequantize_abs_max`` takes weights.
    lsq_axis_from_quant_linear:
        LSQ+ weight quanters fix the channel axis to ``1 if quant_linear else 0`` and refuse
        ``quant_axis=`` (PaddleSlim); ``False``: ``quant_axis=`` chooses it (in the Paddle
        adapter, by default the wrapped layer's weight axis).
    """

    name: str
    reproduces: str | None
    exact_merge: bool
    per_tensor_scale_shape: tuple[int, ...]
    moving_average_init: float
    drops_nonfinite: bool
    channel_axes: tuple[int, ...] | None
    histogram_bins_cover_levels: bool
    flush_subnormal_scales: bool
    updates_state_in_eval: bool
    honours_zero_point: bool
    requires_positive_init: bool
    paddle_api_quirks: bool
    requires_observed_scale: bool
    symmetric_zero_points_none: bool
    channel_min_ndim: int
    lsq_axis_from_quant_linear: bool

    def __repr__(self) -> str:
        return f"<profile {self.name!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickles by name, so an unpickled rules object is the registered one
        return (get_profile, (self.name,))


CANONICAL = ProfileRules(
    name="canonical",
    reproduces=None,
    exact_merge=True,
    per_tensor_scale_shape=(),
    moving_average_init=0.0,
    drops_nonfinite=True,
    channel_axes=None,
    histogram_bins_cover_levels=True,
    flush_subnormal_scales=False,
    updates_state_in_eval=False,
    honours_zero_point=True,
    requires_positive_init=True,
    paddle_api_quirks=False,
    requires_observed_scale=True,
    symmetric_zero_points_none=False,
    channel_min_ndim=1,
    lsq_axis_from_quant_linear=False,
)

PADDLESLIM = ProfileRules(
    name="paddleslim",
    reproduces="PaddleSlim 2.6.0 on Paddle 3.3.1",
    exact_merge=False,
    per_tensor_scale_shape=(1,),
    moving_average_init=1.0,
    drops_nonfinite=False,
    channel_axes=(0, 1),
    histogram_bins_cover_levels=False,
    flush_subnormal_scales=True,
    updates_state_in_eval=True,
    honours_zero_point=False,
    requires_positive_init=False,
    paddle_api_quirks=True,
    requires_observed_scale=False,
    symmetric_zero_points_none=True,
    channel_min_ndim=2,
    lsq_axis_from_quant_linear=True,
)

TORCH = ProfileRules(
    name="torch",
    reproduces="torch 2.13 torch.ao.quantization (CPU)",
    # running min/max is order independent, the moving averages are not; torch has no merge
    exact_merge=False,
    per_tensor_scale_shape=(1,),  # calculate_qparams() returns tensors of shape [1]
    moving_average_init=0.0,  # the first batch sets the range (as the bias-corrected average)
    drops_nonfinite=False,  # torch's aminmax propagates NaN
    channel_axes=None,  # ch_axis may be any axis of the input
    histogram_bins_cover_levels=False,  # HistogramObserver(bins=...) is not checked
    flush_subnormal_scales=False,
    updates_state_in_eval=True,  # forward() updates the statistics in eval() mode too
    honours_zero_point=True,
    requires_positive_init=False,  # no PACT in torch.ao; nothing is checked
    paddle_api_quirks=False,  # not a Paddle front end
    requires_observed_scale=False,  # unobserved: scale [1.0], zero point [0] and a warning
    symmetric_zero_points_none=False,  # symmetric schemes return a zero-point tensor
    channel_min_ndim=1,  # PerChannelMinMaxObserver takes 1-D input
    lsq_axis_from_quant_linear=False,  # no LSQ+ in torch.ao
)

ONNXRUNTIME = ProfileRules(
    name="onnxruntime",
    reproduces="onnxruntime 1.32 onnxruntime.quantization.calibrate (CPU)",
    exact_merge=False,  # the histogram merge depends on batch order; ORT has no merge
    per_tensor_scale_shape=(),  # 0-d ranges and scales (MinMax keeps ORT's (1,) range)
    moving_average_init=0.0,  # the first collect_data call sets the range
    drops_nonfinite=False,  # NaN/Inf follow ORT's numpy calls (refquant.observers.onnxruntime)
    channel_axes=None,
    histogram_bins_cover_levels=False,  # num_bins / num_quantized_bins are not checked
    flush_subnormal_scales=False,
    updates_state_in_eval=True,  # no training mode: every collect_data call updates
    honours_zero_point=True,
    requires_positive_init=False,  # no PACT
    paddle_api_quirks=False,  # not a Paddle front end
    requires_observed_scale=True,  # compute_data without data raises ValueError
    symmetric_zero_points_none=False,
    channel_min_ndim=1,
    lsq_axis_from_quant_linear=False,  # no LSQ+
)

NNCF = ProfileRules(
    name="nncf",
    reproduces="nncf 3.4 MinMax statistic collectors and fake_quantize.py (numpy tensors)",
    exact_merge=False,  # the mean / median aggregators keep float32 per-batch statistics
    per_tensor_scale_shape=(),
    moving_average_init=0.0,  # no moving average: aggregators over the collected batches
    drops_nonfinite=False,  # a NaN becomes the range (docs/divergences.md, N5)
    channel_axes=None,  # the reducer's reduction axes
    histogram_bins_cover_levels=False,  # no histogram
    flush_subnormal_scales=False,
    updates_state_in_eval=True,  # every observe() collects
    honours_zero_point=True,
    requires_positive_init=False,  # no PACT
    paddle_api_quirks=False,  # not a Paddle front end
    requires_observed_scale=True,  # aggregating no statistic raises
    symmetric_zero_points_none=False,
    channel_min_ndim=1,
    lsq_axis_from_quant_linear=False,  # no LSQ+
)

MODELOPT = ProfileRules(
    name="modelopt",
    reproduces="nvidia-modelopt 0.47 calibrators (torch CPU; verified against a recording)",
    exact_merge=False,  # the first batch fixes the histogram's bin width (M4)
    per_tensor_scale_shape=(),
    moving_average_init=0.0,  # no moving average
    drops_nonfinite=False,  # NaN is refused by an assert (M5)
    channel_axes=None,
    histogram_bins_cover_levels=False,  # num_bins is not checked against the levels
    flush_subnormal_scales=False,
    updates_state_in_eval=True,  # every collect() updates
    honours_zero_point=False,  # symmetric amax only: the zero point is always 0
    requires_positive_init=False,  # no PACT
    paddle_api_quirks=False,  # not a Paddle front end
    requires_observed_scale=True,  # compute_amax without data returns None (refused here)
    symmetric_zero_points_none=False,
    channel_min_ndim=1,
    lsq_axis_from_quant_linear=False,  # no LSQ+
)

_REGISTRY: dict[str, ProfileRules] = {}


def register_profile(rules: ProfileRules) -> ProfileRules:
    """Make ``rules`` available by name (``ValueError`` if the name is taken by other rules)."""
    if not isinstance(rules, ProfileRules):
        raise TypeError(f"rules must be a ProfileRules, got {type(rules).__name__}")
    known = _REGISTRY.get(rules.name)
    if known is not None and known != rules:
        raise ValueError(f"profile {rules.name!r} is already registered with other rules")
    _REGISTRY[rules.name] = rules
    return rules


register_profile(CANONICAL)
register_profile(PADDLESLIM)
register_profile(TORCH)
register_profile(ONNXRUNTIME)
register_profile(NNCF)
register_profile(MODELOPT)

#: names of the registered profiles, in registration order
PROFILES: tuple[str, ...] = tuple(_REGISTRY)


def get_profile(profile: str | ProfileRules) -> ProfileRules:
    """The rules for ``profile`` (a registered name, or a rules object returned as is).

    Raises ``TypeError`` for anything else and ``ValueError`` naming the known profiles for an
    unknown name.
    """
    if isinstance(profile, ProfileRules):
        return profile
    if not isinstance(profile, str):
        raise TypeError(f"profile must be a str, got {type(profile).__name__} ({profile!r})")
    try:
        return _REGISTRY[profile]
    except KeyError:
        raise ValueError(
            f"profile must be one of {tuple(_REGISTRY)}, got {profile!r}"
        ) from None


class ProfileVariants:
    """Mixin: ``Family(..., profile=p)`` builds the family's subclass registered for ``p``.

    A family's public class (``AbsmaxObserver``) holds what its variants share. Each variant
    subclasses it once per profile and names the profile in its class statement::

        class _SlimAbsmax(AbsmaxObserver, profile=PADDLESLIM): ...

    Constructing the public class with ``profile=...`` returns an instance of the registered
    variant (still an instance of the public class); a profile without a variant of its own
    raises ``ValueError``. A family that registers no variant at all is one class for every
    profile that differs only by the fields of its rules: the instance then keeps the rules
    it was built with. Instances carry ``self.rules`` (the :class:`ProfileRules`) and
    ``self.profile`` (its name). ``copy``/``pickle`` rebuild the same variant.
    """

    #: profile name -> variant class, one dict per family (each class declared without
    #: ``profile=`` that is not itself a variant starts a family)
    _variants: ClassVar[dict[str, type]]
    #: the rules a variant class was registered for (``None`` on the public class)
    variant_rules: ClassVar[ProfileRules | None] = None
    #: the profile names a family accepts (``None``: every registered profile that has a
    #: variant, or every registered profile for a family without variants)
    supported_profiles: ClassVar[tuple[str, ...] | None] = None
    #: the public class a variant belongs to
    family: ClassVar[type[ProfileVariants]]

    def __init_subclass__(cls, *, profile: ProfileRules | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if profile is None:
            if cls.variant_rules is None:  # a family's public class (or a shared base)
                cls._variants = {}
                cls.family = cls
            return  # a subclass of a variant: same rules and family, not registered
        if not isinstance(profile, ProfileRules):
            raise TypeError(f"profile must be a ProfileRules, got {profile!r}")
        fam = cls.family
        if profile.name in fam._variants:
            raise TypeError(f"{fam.__name__} already has a variant for {profile!r}")
        cls.variant_rules = profile
        fam._variants[profile.name] = cls
        if cls.__doc__ is None:
            cls.__doc__ = fam.__doc__

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls.variant_rules is not None:  # a concrete variant (copy, pickle, direct use)
            return super().__new__(cls)
        rules = get_profile(kwargs.get("profile", "canonical"))
        variants = cls.family._variants
        allowed = cls.supported_profiles
        if allowed is not None and rules.name not in allowed:
            raise ValueError(f"{cls.__name__} supports profile {' / '.join(allowed)}, got "
                             f"profile={rules.name!r}")
        if not variants:  # a family that only reads rules: one class for every profile
            obj = super().__new__(cls)
            obj.__dict__["_rules"] = rules
            return obj
        try:
            impl = variants[rules.name]
        except KeyError:
            raise ValueError(
                f"{cls.__name__} has no variant for profile {rules.name!r}; it has "
                f"{tuple(variants)}"
            ) from None
        if not issubclass(impl, cls):
            raise TypeError(f"{impl.__name__} is not a {cls.__name__}")
        return super().__new__(impl)

    @property
    def rules(self) -> ProfileRules:
        """The profile's rules this object follows."""
        rules = type(self).variant_rules
        if rules is None:
            rules = self.__dict__.get("_rules")
        if rules is None:  # built without the profile machinery (e.g. object.__new__)
            raise AttributeError(f"{type(self).__name__} has no profile rules")
        return rules

    @property
    def profile(self) -> str:
        """The profile's name (``"canonical"``, ``"paddleslim"``, ...)."""
        return self.rules.name

    @property
    def public_name(self) -> str:
        """The family's public class name, for messages and ``repr``."""
        return type(self).family.__name__
