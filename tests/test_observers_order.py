"""refquant.observers.order: batch-order sensitivity of observers.

Expected values: hand-worked moving averages (torch's formula written out in the test), the
real torch.ao observer fed the same orders, and the order-independence of canonical
observers (a property refquant guarantees).
"""

from __future__ import annotations

import numpy as np
import pytest

from refquant.observers import AbsmaxObserver, AVGObserver
from refquant.observers.order import batch_order_sensitivity
from refquant.observers.torch import MovingAverageMinMaxObserver

A = np.array([-1.0, 1.0], dtype=np.float32)
B = np.array([-10.0, 10.0], dtype=np.float32)


def _moving_max(first: float, second: float) -> np.float32:
    """torch's moving average of the max over two batches, in float32, by hand."""
    c = np.float32(0.01)
    return np.float32(np.float32(first) + c * (np.float32(second) - np.float32(first)))


def test_two_orders_of_a_moving_average_hand_worked():
    res = batch_order_sensitivity(
        lambda: MovingAverageMinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric"),
        [A, B])
    assert res.exhaustive and res.orders == ((0, 1), (1, 0))
    half_range = np.float32((127 - (-128)) / 2)
    expected = [_moving_max(1, 10) / half_range, _moving_max(10, 1) / half_range]
    np.testing.assert_array_equal(res.scales[:, 0].view(np.uint32),
                                  np.array(expected, np.float32).view(np.uint32))
    assert res.distinct_scales == 2
    assert res.spread == pytest.approx((9.91 - 1.09) / 1.09, rel=1e-5)
    assert res.worst_orders == ((0, 1), (1, 0))


def test_matches_the_real_torch_observer_in_every_order():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    batches = [rng.normal(0, s, 64).astype(np.float32) for s in (1.0, 4.0, 0.5, 2.0)]
    res = batch_order_sensitivity(lambda: MovingAverageMinMaxObserver(), batches)
    assert res.exhaustive and len(res.orders) == 24
    for order, scale, zp in zip(res.orders, res.scales, res.zero_points, strict=True):
        real = torch.ao.quantization.MovingAverageMinMaxObserver()
        for i in order:
            real(torch.from_numpy(batches[i]))
        s, z = real.calculate_qparams()
        assert scale.view(np.uint32).tolist() == s.numpy().astype(np.float32).view(
            np.uint32).reshape(-1).tolist()
        assert zp.tolist() == z.numpy().reshape(-1).tolist()
    assert res.spread > 0


def test_canonical_observers_do_not_depend_on_the_order():
    rng = np.random.default_rng(7)
    batches = [rng.normal(0, s, 100).astype(np.float32) for s in (1, 3, 0.2, 7, 2)]
    copies = [b.copy() for b in batches]
    for make in (lambda: AbsmaxObserver(), lambda: AVGObserver()):
        res = batch_order_sensitivity(make, batches, permutations=10, seed=1)
        assert not res.exhaustive and len(set(res.orders)) == 10
        assert res.orders[0] == (0, 1, 2, 3, 4) and res.orders[1] == (4, 3, 2, 1, 0)
        assert res.distinct_scales == 1 and res.spread == 0.0
    for b, c in zip(batches, copies, strict=True):  # the caller's arrays are untouched
        assert b.tobytes() == c.tobytes()


def test_summary_is_json_friendly():
    import json

    res = batch_order_sensitivity(lambda: AbsmaxObserver(), [A, B])
    d = json.loads(json.dumps(res.to_dict()))
    assert d["orders"] == 2 and d["distinct_scales"] == 1 and d["spread"] == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"make_observer": 3}, "make_observer"),
    ({"batches": [A]}, "at least 2"),
    ({"batches": "ab"}, "batches"),
    ({"permutations": 1}, "permutations"),
    ({"seed": 1.5}, "seed"),
])
def test_bad_arguments_name_themselves(kwargs, match):
    args = {"make_observer": lambda: AbsmaxObserver(), "batches": [A, B], **kwargs}
    with pytest.raises((TypeError, ValueError), match=match):
        batch_order_sensitivity(**args)
