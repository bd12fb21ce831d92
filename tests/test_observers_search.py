"""paddleslim profile of the abs-max / AVG / MSE / EMD / channel-wise / group-wise observers,
differentially against the installed PaddleSlim 2.6.0 observer layers (Hypothesis-driven).

Abs-max, AVG, channel-wise abs-max and group-wise results must be bit-identical. MSE / EMD
decisions rest on float means whose reduction order Paddle does not let us reproduce in full
(and Paddle's ``** 2`` is Eigen's vectorised ``pow``, not the correctly rounded square), so
a scale may differ only where PaddleSlim chose refquant's second-best candidate and the two
losses are within a float error bound derived in this file from the sizes and magnitudes
(:func:`mse_loss_error`, :func:`emd_loss_error`), never from refquant's reported margin.
A fixed sweep asserts a minimum rate of identical scales.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import testing as rqt
from refquant.observers.absmax import AbsmaxObserver
from refquant.observers.avg import AVGObserver
from refquant.observers.channel_wise import (
    AbsMaxChannelWiseWeightObserver,
    MSEChannelWiseWeightObserver,
)
from refquant.observers.emd import EMDObserver
from refquant.observers.groupwise import GroupWiseWeightObserver
from refquant.observers.mse import MSEObserver
from refquant.testing import import_paddleslim

paddle = pytest.importorskip("paddle")
pytest.importorskip("paddleslim")
obs_mod = import_paddleslim("paddleslim.quant.observers")
from paddleslim.quant.observers.abs_max import AbsmaxObserverLayer  # noqa: E402
from paddleslim.quant.observers.abs_max_weight import (  # noqa: E402
    AbsMaxChannelWiseWeightObserverLayer,
)
from paddleslim.quant.observers.avg import AVGObserverLayer  # noqa: E402
from paddleslim.quant.observers.emd import EMDObserverLayer  # noqa: E402
from paddleslim.quant.observers.groupwise import GroupWiseWeightObserverLayer  # noqa: E402
from paddleslim.quant.observers.mse import MSEObserverLayer  # noqa: E402
from paddleslim.quant.observers.mse_weight import MSEChannelWiseWeightObserverLayer  # noqa: E402

DTYPES = st.sampled_from([np.float32, np.float64])
SHAPES = [(4, 16), (8, 3, 5), (1, 40), (64,), (2, 2, 2, 2), (16, 64)]
# 1-4 batches of one shape and dtype; kind "single" is a one-element batch
batches = rqt.adversarial_batches(st.sampled_from(SHAPES), DTYPES)


def _dummy(kind="linear"):
    return paddle.nn.Linear(2, 2) if kind == "linear" else paddle.nn.Conv2D(1, 1, 1)


def _layer_of(x: np.ndarray) -> str:
    """The layer a weight of this shape belongs to: 4-D conv, otherwise linear."""
    return "conv" if x.ndim == 4 else "linear"


def _f32(v) -> np.ndarray:
    if isinstance(v, paddle.Tensor):
        v = v.numpy()
    return np.asarray(v, dtype=np.float32)


def _same_bits(a, b) -> bool:
    a, b = _f32(a), _f32(b)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


# -- bit-exact observers -----------------------------------------------------------------
@settings(max_examples=40, deadline=None, derandomize=True)
@given(bs=batches, bits=st.sampled_from([8, 4]), peek=st.integers(0, 4))
def test_absmax_matches_paddleslim(bs, bits, peek):
    real = AbsmaxObserverLayer(_dummy(), quant_bits=bits)
    ours = AbsmaxObserver(bits, profile="paddleslim")
    for i, x in enumerate(bs):
        before = x.copy()
        real.forward(paddle.to_tensor(x))
        ours.observe(x)
        assert np.array_equal(x, before)
        if i == peek:  # scales() in the middle: PaddleSlim's cache goes stale (Q10)
            assert _same_bits(real.scales(), ours.compute().scale)
    qp = ours.compute()
    assert _same_bits(real.scales(), qp.scale)
    assert real.zero_points() == 0 and int(qp.zero_point) == 0
    assert (qp.qmin, qp.qmax) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(bs=batches)
def test_avg_matches_paddleslim(bs):
    real = AVGObserverLayer(_dummy())
    ours = AVGObserver(profile="paddleslim")
    for x in bs:
        real.forward(paddle.to_tensor(x))
        ours.observe(x)
    assert _same_bits(real.scales(), ours.compute().scale)
    assert real.zero_points() == 0


@settings(max_examples=30, deadline=None, derandomize=True)
@given(bs=rqt.adversarial_batches(st.sampled_from([(12, 5), (3, 40), (6, 3, 3, 3),
                                                    (2, 1, 5, 1)]), DTYPES),
       bits=st.sampled_from([8, 4]))
def test_abs_max_channel_wise_matches_paddleslim(bs, bits):
    real = AbsMaxChannelWiseWeightObserverLayer(_dummy(_layer_of(bs[0])), quant_bits=bits)
    ours = AbsMaxChannelWiseWeightObserver(bits, profile="paddleslim")
    for x in bs:
        real.forward(paddle.to_tensor(x))
        ours.observe(x)
    qp = ours.compute()
    assert _same_bits(real.scales(), qp.scale)
    assert qp.axis == real.quant_axis()
    assert np.array_equal(real.zero_points().numpy(), qp.zero_point)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(bs=rqt.adversarial_batches(st.tuples(st.sampled_from([64, 128, 256]),
                                             st.integers(1, 6)), DTYPES),
       g=st.sampled_from([64, 128]), peek=st.integers(0, 4))
def test_groupwise_matches_paddleslim(bs, g, peek):
    real = GroupWiseWeightObserverLayer(_dummy(), group_size=g)
    ours = GroupWiseWeightObserver(group_size=g, profile="paddleslim")
    for i, x in enumerate(bs):
        r_exc = o_exc = None
        try:
            real.forward(paddle.to_tensor(x))
        except AssertionError as e:
            r_exc = e
        try:
            ours.observe(x)
        except AssertionError as e:
            o_exc = e
        assert (r_exc is None) == (o_exc is None)
        if r_exc is not None:
            return
        if i == peek:  # scales() caches its first value (Q36)
            assert _same_bits(real.scales(), ours.compute().scale)
    assert _same_bits(real.scales(), ours.compute().scale)


@pytest.mark.parametrize("shape,g", [((96, 4), 64), ((64, 2, 2, 1), 64), ((128, 4), 32)])
def test_groupwise_assertions_match_paddleslim(shape, g):
    x = np.ones(shape, np.float32)
    with pytest.raises(AssertionError) as real:
        GroupWiseWeightObserverLayer(_dummy(), group_size=g).forward(paddle.to_tensor(x))
    with pytest.raises(AssertionError) as ours:
        GroupWiseWeightObserver(group_size=g, profile="paddleslim").observe(x)
    assert str(real.value) == str(ours.value)


# -- searching observers: the same scale, or PaddleSlim's is refquant's runner-up ----------
# MSE / EMD losses are float means whose reduction order (and Paddle's ``** 2``) refquant
# does not reproduce everywhere, so two losses closer than the float error of computing them
# may be ordered differently. The bounds below are derived here from the sizes and
# magnitudes alone (nothing of refquant's own margin or bound is used); every mismatch must
# be PaddleSlim choosing refquant's second-best candidate with a loss gap inside them.

def slim_factors() -> list[float]:
    """PaddleSlim's loop, written out: ``s = 0.3; while s <= 1.0: use(s); s += 0.02``."""
    s, out = 0.3, []
    while s <= 1.0:
        out.append(s)
        s += 0.02
    return out


FACTORS = slim_factors()


def gamma(k: int, u: float) -> float:
    """``gamma_k = k u / (1 - k u)``: ``prod (1 + d_i)^(+-1) = 1 + t`` with ``|t| <= gamma_k``
    for ``k`` roundings ``|d_i| <= u`` (Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., Lemma 3.1)."""
    assert k * u < 0.5
    return k * u / (1.0 - k * u)


def float_params(dtype) -> tuple[float, float]:
    """``(u, mu)``: unit roundoff and smallest normal number of ``dtype``."""
    fi = np.finfo(dtype)
    return float(fi.eps) / 2.0, float(fi.tiny)


def mse_loss_error(loss: float, n: int, dtype) -> float:
    """Bound on ``|L_hat - L|`` for a float mean of ``n`` squared errors (``L`` exact).

    Derivation (``u`` the unit roundoff of ``dtype``). Both implementations compute the
    same elementwise quant-dequant ``y`` (reproduced bit for bit, checked against Paddle in
    tests/test_kernels_slim.py); only the arithmetic after it differs. Per term: ``x - y``
    rounded (1 rounding), its square formed from the rounded difference (a relative error
    ``(1 + d)^2``: 2), the square rounded (1), and Paddle's ``** 2`` (Eigen's vectorised
    ``pow``, measured within 1 ulp of the correctly rounded square) allowed 2 ulp more
    (``2 ulp <= 4u`` relative: 4): ``t_hat_i = t_i (1 + theta_i)``, ``|theta_i| <=
    gamma_8``. Summing ``n`` non-negative terms in any order (sequential, lanes, tree)
    puts at most ``n - 1`` roundings on each term's path, ``|S_hat - S'| <= gamma_(n-1)
    S'``, and the division by ``n`` one more, so ``L_hat = L (1 + theta)``, ``|theta| <=
    gamma_(n+8)`` (Higham Lemma 3.3: ``gamma_a + gamma_b + gamma_a gamma_b <=
    gamma_(a+b)``). Underflow breaks the relative model: below the smallest normal ``mu``
    a result loses less than ``mu`` absolute (gradual underflow or flush-to-zero alike);
    the ``n`` terms and ``n - 1`` additions, divided by ``n``, lose less than ``2 mu``, the
    division less than ``mu``, so ``4 mu`` absolute covers it. Hence ``|L_hat - L| <=
    gamma_(n+8) L + 4 mu``, and with ``L <= (L_hat + 4 mu) / (1 - gamma_(n+8))`` the bound
    follows from the computed value ``loss`` alone.
    """
    u, mu = float_params(dtype)
    g = gamma(n + 8, u)
    exact = (abs(loss) + 4 * mu) / (1.0 - g)
    return g * exact + 4 * mu


def emd_loss_error(x: np.ndarray, scale: float, qmax: int) -> float:
    """Bound on ``|L_hat - L|`` for PaddleSlim's EMD loss of candidate ``scale`` on ``x``.

    ``L = |mean(x) - mean(y)| + |std(x) - std(y)|`` (unbiased std, ``y`` the quant-dequant,
    identical in both implementations). With ``gamma_k`` for the dtype of ``x``:

    * a float mean of ``n`` terms ``v_i``: ``|m_hat - m| <= gamma_n A_v``, ``A_v =
      mean |v_i|`` (``n - 1`` additions, one division);
    * a float std: ``(v_i - m_hat)`` rounded (1), squared from the rounded value (2), the
      square rounded (1) plus 2 ulp for ``pow`` (4), summed (``n - 1``), divided (1):
      ``var_hat = V' (1 + theta)``, ``|theta| <= gamma_(n+8)`` where ``V' = V + n (m_hat -
      m)^2 / (n - 1)`` (``sum (v_i - m_hat)^2 = sum (v_i - m)^2 + n (m_hat - m)^2``); the
      rounded ``sqrt`` keeps it within ``gamma_(n+8)`` relative, and ``sqrt(V') - sqrt(V)
      <= sqrt(n / (n - 1)) |m_hat - m| <= 2 gamma_n A_v``, so ``|s_hat - s| <=
      gamma_(n+8) s + 2 gamma_n (1 + gamma_(n+8)) A_v``;
    * two subtractions and one addition on values below ``A_x + A_y + s_x + s_y``: ``gamma_3``
      of that.

    Summed (``gamma_a + gamma_b <= gamma_(a+b)``; the products ``2 gamma_n gamma_(n+8)`` stay
    below the ``30 u`` left over while ``n (n + 8) u <= 8``, asserted): ``|L_hat - L| <=
    gamma_(n+11) (3 (A_x + A_y) + s_x + s_y)``. ``y`` is not formed here; the magnitudes are
    bounded from ``x``: ``|y_i| <= |x_i| + d`` with ``d = |scale| / qmax``, so ``A_y <= A_x +
    d``; ``|x_i - y_i| <= e_i = d`` inside ``[-|scale|, |scale|]`` and ``|x_i| - |scale| +
    d`` outside, so ``s_y <= s_x + sqrt(n / (n - 1)) rms(e)``. Underflow (see
    :func:`mse_loss_error`): a variance can lose ``4 mu`` absolute, a std then ``2
    sqrt(mu)``, a mean ``2 mu``, each of the last three operations ``mu``: ``4 sqrt(mu) +
    8 mu`` in all. ``A_x``, ``s_x``, ``e`` are evaluated in float64 (their own error is far
    below the bound's ``gamma``).
    """
    xd = np.asarray(x, dtype=np.float64).ravel()
    n = xd.size
    if n < 2:
        return 0.0  # the std is NaN: every loss is NaN and never chosen
    u, mu = float_params(x.dtype)
    assert n * (n + 8) * u <= 8
    a_x = float(np.mean(np.abs(xd)))
    s_x = float(np.std(xd, ddof=1))
    d = abs(scale) / qmax
    e = np.where(np.abs(xd) <= abs(scale), d, np.abs(xd) - abs(scale) + d)
    a_y = a_x + d
    s_y = s_x + math.sqrt(n / (n - 1)) * float(np.sqrt(np.mean(e * e)))
    return gamma(n + 11, u) * (3 * (a_x + a_y) + s_x + s_y) + 4 * math.sqrt(mu) + 8 * mu


def carried_error(history: list[tuple[float, float]]) -> float:
    """Bound on ``|min_i a_i - min_i b_i|`` given ``|a_i - b_i| <= D_i`` for every ``i``.

    ``history`` holds ``(b_i, D_i)``: refquant's loss and the bound on the difference to
    PaddleSlim's ``a_i``. With ``m = argmin b`` and ``k = argmin a``: ``min a - min b <= a_m -
    b_m <= D_m``, and ``min b - min a <= b_k - a_k <= D_k`` where ``b_k - D_k <= a_k <= a_m
    <= b_m + D_m``, so the maximum of ``D_i`` over ``{i: b_i - D_i <= b_m + D_m}`` bounds it.
    """
    finite = [(b, dd) for b, dd in history if not math.isnan(b)]
    if not finite:
        return 0.0
    bm, dm = min(finite)
    return max(dd for b, dd in finite if b - dd <= bm + dm)


def runner_up_problem(chosen: np.float32, scales: np.ndarray, losses: np.ndarray,
                      diffs: np.ndarray, best: int) -> str | None:
    """Why PaddleSlim's ``chosen`` scale is not refquant's runner-up within the bound.

    ``scales`` (float32), ``losses`` (refquant's) and ``diffs`` (bounds on |PaddleSlim's
    loss - refquant's|) are per candidate; ``best`` is refquant's choice. PaddleSlim picks
    ``j`` over ``best`` only if its own ``a_j <= a_best``, so ``b_j - b_best <= D_j +
    D_best``. Returns None when ``chosen`` is the scale of a candidate ``j != best`` whose
    loss is the second smallest of refquant's (ties included) and the gap is inside that.
    """
    hits = np.flatnonzero(scales.view(np.uint32) == np.float32(chosen).view(np.uint32))
    if hits.size == 0:
        return f"PaddleSlim's scale {chosen!r} is none of the candidates {scales!r}"
    v = np.sort(losses[~np.isnan(losses)])
    if v.size < 2:
        return f"only {v.size} comparable losses, yet PaddleSlim chose differently"
    for j in hits:
        if j != best and losses[j] <= v[1] and losses[j] - losses[best] <= diffs[j] + diffs[best]:
            return None
    j = int(hits[0])
    return (f"PaddleSlim chose candidate {j} (loss {losses[j]!r}), refquant {best} "
            f"(loss {losses[best]!r}); second-smallest loss {v[1]!r}; gap "
            f"{losses[j] - losses[best]!r} vs bound {diffs[j] + diffs[best]!r}")


def last_min(losses: np.ndarray) -> int:
    """PaddleSlim's per-tensor rule ``if loss <= running: take it``: the LAST minimal
    non-NaN entry (index 0, the carried loss, when everything is NaN)."""
    ok = ~np.isnan(losses)
    if not ok.any():
        return 0
    m = np.min(losses[ok])
    return int(np.flatnonzero(ok & (losses == m))[-1])


def first_min(losses: np.ndarray) -> int:
    """PaddleSlim's channel-wise rule ``where(loss < running, ...)``: the FIRST minimal
    non-NaN entry (index 0, the abs-max kept for an all-NaN channel, when none)."""
    ok = ~np.isnan(losses)
    if not ok.any():
        return 0
    m = np.min(losses[ok])
    return int(np.flatnonzero(ok & (losses == m))[0])


def per_tensor_case(loss: str, bs: list[np.ndarray], bits: int) -> tuple[bool, str | None]:
    """Run PaddleSlim's and refquant's MSE / EMD observer on the batches ``bs``.

    Returns ``(same scale, problem)``; ``problem`` is None unless a mismatch is not
    refquant's runner-up within the bound. Candidates in PaddleSlim's order: the loss carried
    from earlier batches (scale: this batch's maximum), then the 35 factors.
    """
    layer, cls = (MSEObserverLayer, MSEObserver) if loss == "mse" else (EMDObserverLayer,
                                                                          EMDObserver)
    real = layer(_dummy(), quant_bits=bits)
    ours = cls(bits, profile="paddleslim")
    qmax = 2 ** (bits - 1) - 1
    history: list[tuple[float, float]] = []
    for i, x in enumerate(bs):
        real.forward(paddle.to_tensor(x))
        ours.observe(x)
        qp = ours.compute()
        losses = np.asarray(qp.extra["losses"], dtype=np.float64)
        m = float(np.max(np.abs(x))) if loss == "mse" else float(np.max(x))
        am = 1e-8 if m == 0.0 else m
        scales = [f * am for f in FACTORS]
        if loss == "mse":
            diffs = [2 * mse_loss_error(v, x.size, x.dtype) for v in losses]
        else:
            diffs = [2 * emd_loss_error(x, s, qmax) for s in scales]
        if i < len(bs) - 1:
            history += zip(losses.tolist(), diffs, strict=True)
            continue
        carried = float(qp.extra["carried"])
        earlier = [b for b, _ in history if not math.isnan(b)]
        assert carried == (min(earlier) if earlier else math.inf)
        all_losses = np.array([carried, *losses])
        all_diffs = np.array([carried_error(history), *diffs])
        all_scales = np.float32([max(v, 0.0) for v in [am, *scales]])  # scales(): max(v, 0)
        best = last_min(all_losses)
        assert _same_bits(all_scales[best], qp.scale)  # refquant's own rule on its losses
        chosen = np.float32(real.scales())
        if _same_bits(chosen, qp.scale):
            return True, None
        return False, runner_up_problem(chosen, all_scales, all_losses, all_diffs, best)
    raise AssertionError("no batches")


def channel_wise_case(xs: list[np.ndarray], bits: int) -> tuple[int, int, str | None]:
    """``(channels with the same scale, channels, first problem)`` for MSE channel-wise."""
    real = MSEChannelWiseWeightObserverLayer(_dummy(_layer_of(xs[0])), quant_bits=bits)
    ours = MSEChannelWiseWeightObserver(bits, profile="paddleslim")
    for x in xs:
        real.forward(paddle.to_tensor(x))
        ours.observe(x)
    qp = ours.compute()
    x = xs[0]  # PaddleSlim keeps the first batch's result (Q33)
    axis = real.quant_axis()
    reduce = tuple(i for i in range(x.ndim) if i != axis)
    t = paddle.to_tensor(x)  # PaddleSlim's own expressions for the candidate scales
    am = paddle.max(paddle.abs(t), axis=reduce)
    am = paddle.where(am == np.float32(0.0), np.float32(1e-8), am)
    cand = np.stack([_f32(am)] + [_f32(f * am) for f in FACTORS])  # (36, C): am first
    n = x.size // x.shape[axis]
    losses = np.vstack([np.full((1, cand.shape[1]), np.inf), qp.extra["losses"]])
    chosen = _f32(real.scales())
    same, problem = 0, None
    for c in range(cand.shape[1]):
        col = losses[:, c]
        best = first_min(col)
        assert _same_bits(cand[best, c], qp.scale[c])  # refquant's own rule on its losses
        if _same_bits(chosen[c], qp.scale[c]):
            same += 1
            continue
        diffs = np.array([2 * mse_loss_error(v, n, x.dtype) if np.isfinite(v) else 0.0
                          for v in col])
        problem = problem or runner_up_problem(chosen[c], cand[:, c], col, diffs, best)
    return same, cand.shape[1], problem


@settings(max_examples=60, deadline=None, derandomize=True)
@given(bs=batches, bits=st.sampled_from([8, 4]))
def test_mse_matches_paddleslim(bs, bits):
    _, problem = per_tensor_case("mse", bs, bits)
    assert problem is None, problem


@settings(max_examples=50, deadline=None, derandomize=True)
@given(bs=batches, bits=st.sampled_from([8, 4]))
def test_emd_matches_paddleslim(bs, bits):
    _, problem = per_tensor_case("emd", bs, bits)
    assert problem is None, problem


WEIGHT_SHAPES = [(12, 5), (40, 3), (6, 3, 3, 3), (4, 2, 1, 3), (64, 16)]  # 4-D: conv


@settings(max_examples=40, deadline=None, derandomize=True)
@given(bs=rqt.adversarial_batches(st.sampled_from(WEIGHT_SHAPES), DTYPES),
       bits=st.sampled_from([8, 4]))
def test_mse_channel_wise_matches_paddleslim(bs, bits):
    _, _, problem = channel_wise_case(bs, bits)
    assert problem is None, problem


# -- agreement rates over a fixed sweep ----------------------------------------------------
def sweep(n: int, seed: int, shapes: list[tuple[int, ...]]):
    """``n`` deterministic cases ``(batches, bits)``: 1-4 batches of one shape of ``shapes``
    and one dtype, each of its own kind, seed and magnitude (:func:`rqt.adversarial_array`)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        shape = shapes[int(rng.integers(len(shapes)))]
        dt = (np.float32, np.float64)[rng.integers(2)]
        bs = [rqt.adversarial_array(str(rng.choice(rqt.ARRAY_KINDS)), int(rng.integers(2**32)),
                                    shape, dt, float(rng.choice(rqt.MAGNITUDES)))
              for _ in range(int(rng.integers(1, 5)))]
        yield bs, int(rng.choice([8, 4]))


# Measured (Paddle 3.3.1, PaddleSlim 2.6.0): identical scales in 200/200 MSE and 100/100 EMD
# cases of these sweeps and in 716/716 channels of the channel-wise one (also in 77,872 of
# 77,872 channels of 1024 values, and in all 75 per-tensor MSE near-ties -- relative loss
# gap below 3e-7, 5 of them exact ties -- found among 391,000 small random float32 inputs).
# The thresholds leave room for a few legitimate runner-up choices, not for a drift in
# refquant's losses.
@pytest.mark.parametrize("loss,n_cases,min_rate", [
    ("mse", 200, 0.98),
    ("emd", 100, 0.98),  # PaddleSlim's own EMD layer takes most of the time
])
def test_search_agreement_rate(loss, n_cases, min_rate):
    same = 0
    for bs, bits in sweep(n_cases, 11 if loss == "mse" else 12, SHAPES + [(32, 128)]):
        ok, problem = per_tensor_case(loss, bs, bits)
        assert problem is None, (bs, bits, problem)
        same += ok
    print(f"{loss}: identical scale in {same}/{n_cases}")
    assert same >= min_rate * n_cases, f"{loss}: identical scale in {same}/{n_cases}"


def test_channel_wise_agreement_rate():
    same = total = 0
    for bs, bits in sweep(100, 14, WEIGHT_SHAPES):
        s, c, problem = channel_wise_case(bs, bits)
        assert problem is None, (bs, bits, problem)
        same, total = same + s, total + c
    print(f"channel-wise: identical scale in {same}/{total} channels")
    assert same >= 0.98 * total, f"identical scale in {same}/{total} channels"


# -- the check itself ----------------------------------------------------------------------
def test_runner_up_check_hand_worked():
    scales = np.float32([1.0, 2.0, 3.0, 4.0])
    losses = np.array([1.5, 1.0, 1.0 + 1e-7, 2.0])
    diffs = np.full(4, 1e-7)
    assert runner_up_problem(np.float32(3.0), scales, losses, diffs, 1) is None
    assert "gap" in runner_up_problem(np.float32(3.0), scales, losses, np.full(4, 1e-8), 1)
    assert "gap" in runner_up_problem(np.float32(4.0), scales, losses, np.full(4, 9.0), 1)
    assert "gap" in runner_up_problem(np.float32(2.0), scales, losses, diffs, 1)  # = best
    assert "none of the candidates" in runner_up_problem(np.float32(5.0), scales, losses,
                                                         diffs, 1)
    tie = np.array([1.0, 1.0, 3.0, 4.0])  # an exact tie: either is the runner-up of the other
    assert runner_up_problem(np.float32(1.0), scales, tie, np.zeros(4), 1) is None
    assert carried_error([(1.0, 0.1), (1.15, 0.2), (1.5, 0.3), (math.nan, 9.0)]) == 0.2
    assert last_min(np.array([2.0, 1.0, 1.0, math.nan])) == 2
    assert first_min(np.array([np.inf, 1.0, 1.0, math.nan])) == 1


def test_error_bounds_hand_worked():
    u = 2.0**-24
    assert gamma(3, u) == 3 * u / (1 - 3 * u)
    g = gamma(10 + 8, u)
    assert mse_loss_error(1.0, 10, np.float32) == pytest.approx(g / (1 - g) + 4 * 2.0**-126 * (
        1 + g / (1 - g)), rel=1e-12)
    # EMD on x = [-1, 1], scale 1, qmax 1: A_x = 1, s_x = sqrt(2), d = 1, e = [1, 1],
    # A_y <= 2, s_y <= sqrt(2) + sqrt(2) * 1
    want = gamma(2 + 11, u) * (3 * 3 + math.sqrt(2) + 2 * math.sqrt(2)) \
        + 4 * 2.0**-63 + 8 * 2.0**-126
    assert emd_loss_error(np.float32([-1.0, 1.0]), 1.0, 1) == pytest.approx(want, rel=1e-12)
    assert slim_factors()[:3] == [0.3, 0.32, 0.34] and len(slim_factors()) == 35
