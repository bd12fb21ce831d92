"""QParams, integer ranges and range -> scale/zero-point, against hand-worked values."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import QParams, asymmetric_qparams, integer_range, symmetric_qparams


@pytest.mark.parametrize(
    ("bits", "signed", "narrow", "expected"),
    [
        (8, True, False, (-128, 127)),
        (8, True, True, (-127, 127)),
        (8, False, False, (0, 255)),
        (8, False, True, (1, 255)),
        (4, True, False, (-8, 7)),
        (4, False, False, (0, 15)),
        (2, True, False, (-2, 1)),
        (16, True, False, (-32768, 32767)),
        (16, False, False, (0, 65535)),
    ],
)
def test_integer_range_hand_worked(bits, signed, narrow, expected):
    assert integer_range(bits, signed, narrow) == expected


@pytest.mark.parametrize("bits", [1, 17, 0, -3])
def test_integer_range_rejects_bits_outside_2_16(bits):
    with pytest.raises(ValueError, match="bits"):
        integer_range(bits)


@pytest.mark.parametrize("bits", [8.0, "8", None, True])
def test_integer_range_rejects_non_integer_bits(bits):
    with pytest.raises(TypeError, match="bits"):
        integer_range(bits)


def test_symmetric_threshold_is_absmax_and_step_is_one_float32_division():
    qp = symmetric_qparams(-3.0, 2.0, bits=8)
    assert qp.scale.dtype == np.float32 and qp.scale.shape == ()
    assert float(qp.scale) == 3.0
    assert int(qp.zero_point) == 0 and (qp.qmin, qp.qmax) == (-128, 127)
    # 3/127 correctly rounded to float32, computed independently through Fraction
    exact = Fraction(3, 127)
    candidates = np.array([float(exact)], dtype=np.float32)
    best = min(
        (np.nextafter(candidates[0], np.float32(0)), candidates[0],
         np.nextafter(candidates[0], np.float32(1))),
        key=lambda f: abs(Fraction(float(f)) - exact),
    )
    y_scale, y_zp = qp.to_onnx()
    assert y_scale.dtype == np.float32
    assert y_scale.view(np.uint32) == np.float32(best).view(np.uint32)
    assert y_zp.dtype == np.int8 and int(y_zp) == 0


def test_asymmetric_hand_worked_signed_and_unsigned():
    # range [-1, 3] on a signed 8-bit grid: step 4/255, zp = -128 - round(-1 / (4/255)) = -64
    qp = asymmetric_qparams(-1.0, 3.0, bits=8, signed=True)
    assert qp.convention == "step"
    assert qp.scale.view(np.uint32) == np.float32(4 / 255).view(np.uint32)
    assert int(qp.zero_point) == -64
    # unsigned: zp = 0 - round(-63.75) = 64
    qpu = asymmetric_qparams(-1.0, 3.0, bits=8, signed=False)
    assert int(qpu.zero_point) == 64 and (qpu.qmin, qpu.qmax) == (0, 255)
    # a range not containing 0 is widened to contain it
    qp2 = asymmetric_qparams(0.5, 3.0, bits=8, signed=False)
    assert qp2.scale.view(np.uint32) == np.float32(3 / 255).view(np.uint32)
    assert int(qp2.zero_point) == 0
    y_scale, y_zp = qp2.to_onnx(np.uint8)
    assert y_zp.dtype == np.uint8 and int(y_zp) == 0


def test_asymmetric_round_half_even_zero_point():
    # min=-0.5 step 1/255*... choose range so that -min/step is exactly 0.5 + k:
    # [-1, 254] on 8-bit unsigned: step = 1, zp = -round(-1) = 1; [-0.5, 254.5]: step 1,
    # -min/step = 0.5 -> rounds to 0 (half to even)
    qp = asymmetric_qparams(-0.5, 254.5, bits=8, signed=False)
    assert float(qp.scale) == 1.0 and int(qp.zero_point) == 0
    qp = asymmetric_qparams(-1.5, 253.5, bits=8, signed=False)
    assert float(qp.scale) == 1.0 and int(qp.zero_point) == 2


def test_all_zero_range():
    qp = asymmetric_qparams(0.0, 0.0, bits=8, signed=False)
    assert float(qp.scale) == 0.0 and int(qp.zero_point) == 0
    qs = symmetric_qparams(0.0, 0.0)
    assert float(qs.scale) == 0.0


def test_per_channel_shapes_and_axis():
    qp = symmetric_qparams(np.array([-1.0, -4.0, 0.0]), np.array([2.0, 1.0, 0.0]), axis=0)
    assert qp.scale.shape == (3,) and qp.zero_point.shape == (3,) and qp.axis == 0
    assert qp.scale.tolist() == [2.0, 4.0, 0.0]


def test_unrepresentable_scales_rejected():
    with pytest.raises(ValueError, match="step that float32 cannot represent"):
        asymmetric_qparams(0.0, 5e-324, bits=2, signed=True)
    with pytest.raises(ValueError, match="threshold that float32 cannot represent"):
        symmetric_qparams(-1e39, 1.0)
    with pytest.raises(ValueError, match="threshold that float32 cannot represent"):
        symmetric_qparams(0.0, 1e-46)


def test_nan_range_rejected():
    with pytest.raises(ValueError, match="NaN"):
        symmetric_qparams(float("nan"), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        asymmetric_qparams(0.0, float("nan"))


def test_qparams_is_immutable_and_copies_inputs():
    scale = np.array([1.0, 2.0], dtype=np.float32)
    qp = QParams(scale, np.zeros(2, np.int64), -128, 127, 8, axis=0)
    scale[0] = 99.0
    assert qp.scale[0] == 1.0
    with pytest.raises(ValueError):
        qp.scale[0] = 5.0  # read-only array
    with pytest.raises(AttributeError):
        qp.bits = 4  # type: ignore[misc]


def test_qparams_validation_errors_name_the_field():
    with pytest.raises(ValueError, match="qmin"):
        QParams(1.0, 0, 5, 5, 8)
    with pytest.raises(ValueError, match="convention"):
        QParams(1.0, 0, -128, 127, 8, convention="amax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zero_point"):
        QParams(1.0, 0.5, -128, 127, 8)
    with pytest.raises(ValueError, match="zero_point"):
        QParams(np.ones(3), np.zeros(2), -128, 127, 8)
    with pytest.raises(ValueError, match="zero_point"):
        QParams(1.0, 200, 0, 255, 8).to_onnx(np.int8)


def test_equality_is_bitwise_and_ignores_margin():
    a = QParams(0.0, 0, -128, 127, 8, margin=0.5)
    b = QParams(-0.0, 0, -128, 127, 8, margin=0.1)
    c = QParams(0.0, 0, -128, 127, 8, margin=0.1)
    assert a != b  # +0.0 and -0.0 differ bitwise
    assert a == c
    d = QParams(1.0, 0, -128, 127, 8)
    assert d.to_dict()["scale_bits"] == 0x3F800000


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    lo=st.floats(-1e6, 0, allow_nan=False, allow_subnormal=True),
    hi=st.floats(0, 1e6, allow_nan=False, allow_subnormal=True),
    bits=st.integers(2, 16),
    signed=st.booleans(),
)
def test_asymmetric_zero_point_maps_zero_exactly(lo, hi, bits, signed):
    """The grid [qmin-zp, qmax-zp]*step covers [lo, hi] to within one step (exact arithmetic)."""
    qmin, qmax = integer_range(bits, signed)
    width = Fraction(max(hi, 0.0)) - Fraction(min(lo, 0.0))
    if width > 0 and np.float32(float(width / (qmax - qmin))) == 0:
        with pytest.raises(ValueError, match="float32 cannot represent"):
            asymmetric_qparams(lo, hi, bits=bits, signed=signed)
        return
    qp = asymmetric_qparams(lo, hi, bits=bits, signed=signed)
    assert qp.qmin <= int(qp.zero_point) <= qp.qmax
    if hi - lo > 0:
        step = Fraction(hi - lo) / (qp.qmax - qp.qmin)
        # the representable range [qmin-zp, qmax-zp]*step covers [lo, hi] up to one step
        assert (qp.qmin - int(qp.zero_point)) * step <= Fraction(lo) + step
        assert (qp.qmax - int(qp.zero_point)) * step >= Fraction(hi) - step


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"scale": float("nan")}, ValueError, r"scale must be >= 0 and finite, got nan"),
        ({"scale": -1.0}, ValueError, r"scale must be >= 0 and finite, got -1.0"),
        ({"scale": float("inf")}, ValueError, r"scale must be >= 0 and finite, got inf"),
        ({"scale": None}, TypeError, r"scale must be a real number or array, got None"),
        ({"scale": 1e39}, ValueError, r"scale holds 1e\+39 .*beyond the float32 range"),
        ({"scale": 1e-50}, ValueError, r"scale holds 1e-50 .*rounds to 0 in float32"),
        ({"scale": "1"}, TypeError, "scale"),
        ({"zero_point": 200}, ValueError,
         r"zero_point must be in \[qmin, qmax\] = \[-128, 127\], got 200"),
        ({"zero_point": -129}, ValueError, "zero_point must be in"),
        ({"zero_point": None}, TypeError, "zero_point"),
        ({"bits": 99}, ValueError, r"bits must be in \[2, 16\], got 99"),
        ({"bits": True}, TypeError, "bits must be an integer"),
        ({"axis": "a"}, TypeError, "axis must be an integer, got 'a'"),
        ({"qmin": -127.5}, TypeError, "qmin must be an integer, got -127.5"),
        ({"qmin": -128.0}, TypeError, "qmin must be an integer"),
        ({"qmax": "127"}, TypeError, "qmax must be an integer"),
        ({"margin": "a"}, TypeError, "margin"),
        ({"extra": None}, TypeError, "extra must be a dict"),
    ],
)
def test_qparams_rejects_bad_fields(kwargs, exc, match):
    base = {"scale": 1.0, "zero_point": 0, "qmin": -128, "qmax": 127, "bits": 8}
    with pytest.raises(exc, match=match):
        QParams(**{**base, **kwargs})


def test_qparams_reads_big_endian_and_never_keeps_caller_arrays():
    be = np.array([0.1, 3.0], dtype=">f4")
    zp = np.array([1, -2], dtype=">i2")
    qp = QParams(be, zp, -128, 127, 8, axis=0)
    ref = QParams(be.astype(np.float32), zp.astype(np.int64), -128, 127, 8, axis=0)
    assert qp == ref and qp.scale.dtype.isnative
    assert qp.scale.view(np.uint32).tolist() == np.float32([0.1, 3.0]).view(np.uint32).tolist()
    assert qp.zero_point.tolist() == [1, -2]
    assert not np.shares_memory(qp.scale, be) and not np.shares_memory(qp.zero_point, zp)


def test_range_order_is_checked_before_widening():
    with pytest.raises(ValueError, match=r"min_val must be <= max_val, got 3.0 > 1.0"):
        asymmetric_qparams(3, 1)
    with pytest.raises(ValueError, match=r"min_val must be <= max_val, got 3.0 > 1.0"):
        symmetric_qparams(3, 1)
    # a range not containing 0 is still widened when it is ordered: [1, 3] -> [0, 3]
    assert asymmetric_qparams(1, 3).scale == np.float32(3 / 255)
    with pytest.raises(TypeError, match="min_val"):
        asymmetric_qparams("0", 1)
    with pytest.raises(TypeError, match="signed must be a bool"):
        symmetric_qparams(-1, 1, signed="no")


def test_to_onnx_refuses_a_zero_y_scale():
    # 1e-45 rounds to the smallest subnormal 2^-149; 2^-149 / 127 rounds to 0 in float32
    with pytest.raises(ValueError, match="underflows to 0"):
        symmetric_qparams(0, 1e-45).to_onnx()
    with pytest.raises(ValueError, match="ONNX requires a finite y_scale > 0"):
        QParams(0.0, 0, -128, 127, 8).to_onnx()
    with pytest.raises(TypeError, match="dtype must be a NumPy integer dtype"):
        QParams(1.0, 0, -128, 127, 8).to_onnx(np.float32)
    # a subnormal y_scale is kept: 2^-126 / 2 = 2^-127, exact
    y_scale, _ = QParams(np.float32(2.0**-126), 0, -2, 2, 2).to_onnx()
    assert y_scale == np.float32(2.0**-127) and y_scale > 0


def test_integer_range_flags_are_bools():
    with pytest.raises(TypeError, match="signed must be a bool"):
        integer_range(8, signed="no")
    with pytest.raises(TypeError, match="narrow must be a bool"):
        integer_range(8, narrow=1)
