"""Shared argument checks: messages name the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest

from refquant._validation import (
    as_float_array,
    as_kernel_input,
    as_real_array,
    as_zero_point,
    check_axis,
    check_bits,
    check_flag,
    check_int,
    check_percent,
    check_positive_finite_scale,
    check_real,
    check_scale_values,
    native,
    to_float_dtype,
)


def test_float_array_rejects_integer_arrays_and_strings():
    with pytest.raises(TypeError, match="x must have a floating-point dtype.*int32"):
        as_float_array(np.arange(3, dtype=np.int32), "x")
    with pytest.raises(TypeError, match="weight"):
        as_float_array("abc", "weight")
    with pytest.raises(TypeError, match="x"):
        as_float_array(None, "x")


def test_float_array_promotes_python_lists_and_keeps_float_arrays():
    a = as_float_array([1, 2, 3], "x")
    assert a.dtype == np.float64
    b = np.ones(3, np.float16)
    assert as_float_array(b, "x") is b


def test_float_array_empty_rank_and_nonfinite():
    with pytest.raises(ValueError, match="x must not be empty"):
        as_float_array(np.zeros((0, 3)), "x")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        as_float_array(np.zeros(3), "w", min_ndim=2)
    with pytest.raises(ValueError, match=r"non-finite.*flat index 1"):
        as_float_array(np.array([1.0, np.nan]), "x", allow_nonfinite=False)
    as_float_array(np.array([1.0, np.inf]), "x", allow_nonfinite=True)


def test_bits_axis_percent_scale():
    assert check_bits(np.int64(4)) == 4
    with pytest.raises(ValueError, match="quant_bits must be in"):
        check_bits(17, "quant_bits")
    assert check_axis(-1, 3) == 2
    with pytest.raises(ValueError, match="axis=3 is out of range"):
        check_axis(3, 3)
    with pytest.raises(ValueError, match="quant_axis must be one of"):
        check_axis(2, 4, "quant_axis", allowed=(0, 1))
    with pytest.raises(TypeError, match="axis"):
        check_axis(1.0, 3)
    assert check_percent(1) == 1.0
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="percent"):
            check_percent(bad)
    with pytest.raises(ValueError, match=r"scale must be finite and > 0, got np.float32\(0.0\)"):
        check_positive_finite_scale(np.array([1.0, 0.0], np.float32))


def test_native_and_big_endian_float_arrays_keep_their_values():
    be = np.array([1.5, -2.0, np.nan], dtype=">f4")
    a = as_float_array(be, "x")
    assert a.dtype == np.float32 and a.dtype.isnative
    # the float32 bit patterns of 1.5, -2.0 and the default NaN, written out by hand
    assert a.view(np.uint32).tolist() == [0x3FC00000, 0xC0000000, 0x7FC00000]
    n = np.ones(3, np.float32)
    assert native(n) is n


def test_check_int_refuses_bools_floats_and_out_of_range():
    assert check_int(np.int16(-3), "qmin") == -3
    for bad in (True, 1.0, 1.5, "1", None, np.float32(2)):
        with pytest.raises(TypeError, match="qmin must be an integer"):
            check_int(bad, "qmin")
    with pytest.raises(ValueError, match=r"round_type must be in \[0, 1\], got 5"):
        check_int(5, "round_type", 0, 1)
    with pytest.raises(ValueError, match=r"qmax must be in \[1, inf\], got 0"):
        check_int(0, "qmax", low=1)


def test_check_flag():
    assert check_flag(np.bool_(True), "signed") is True
    for bad in ("no", 1, 0, None, 1.0):
        with pytest.raises(TypeError, match="signed must be a bool"):
            check_flag(bad, "signed")
    assert check_flag(1, "saturate", allow_int=True) is True
    with pytest.raises(TypeError, match=r"saturate must be a bool \(or 0/1\)"):
        check_flag(2, "saturate", allow_int=True)


def test_check_real():
    assert check_real(3, "max_range", positive=True) == 3.0
    assert check_real(0.1, "r", dtype=np.float32) == np.float32(0.1)
    with pytest.raises(ValueError, match="max_range must be > 0, got 0"):
        check_real(0, "max_range", positive=True)
    with pytest.raises(ValueError, match="moving_rate must be finite, got nan"):
        check_real(float("nan"), "moving_rate")
    with pytest.raises(ValueError, match="beyond the float32 range"):
        check_real(1e39, "max_range", dtype=np.float32)
    with pytest.raises(ValueError, match="beyond the float64 range"):
        check_real(10**400, "step")
    for bad in (True, "1", None, 1j, np.array(1.0)):
        with pytest.raises(TypeError, match="step must be a real number"):
            check_real(bad, "step")


def test_as_real_array_and_to_float_dtype():
    assert as_real_array([1, 2], "zp").dtype == np.int64
    for bad in (None, "1", True, [1j], np.array([True]), np.array(["a"]), [[1], [1, 2]]):
        with pytest.raises(TypeError, match="min_val"):
            as_real_array(bad, "min_val")
    with pytest.raises(ValueError, match="min_val must not be empty"):
        as_real_array([], "min_val", allow_empty=False)
    src = np.array([1.0, 3.4028235e38, np.inf, 1e-50])
    out = to_float_dtype(src, np.float32, "x")
    # 3.4028235e38 rounds to float32's largest finite value 0x7F7FFFFF; inf stays inf;
    # 1e-50 rounds to +0 (ordinary rounding, not an error)
    assert out.view(np.uint32).tolist() == [0x3F800000, 0x7F7FFFFF, 0x7F800000, 0]
    with pytest.raises(ValueError, match=r"x holds -1e\+39 \(flat index 1\), beyond the "
                                         r"float32 range"):
        to_float_dtype(np.array([0.0, -1e39]), np.float32, "x")
    with pytest.raises(ValueError, match="beyond the float16 range"):
        to_float_dtype(np.array([70000]), np.float16, "q")


def test_as_kernel_input():
    lst = as_kernel_input([0.5, 1], "x", (np.float32,))
    assert lst.dtype == np.float32 and lst.tolist() == [0.5, 1.0]
    with pytest.raises(TypeError, match=r"x must have dtype in \(float32\), got dtype float64"):
        as_kernel_input(np.ones(2), "x", (np.float32,))
    with pytest.raises(ValueError, match="beyond the float32 range"):
        as_kernel_input([1e39], "x", (np.float32, np.float64))
    with pytest.raises(ValueError, match="x must not be empty"):
        as_kernel_input(np.ones(0, np.float32), "x", (np.float32,), allow_empty=False)
    be = np.array([2.5], ">f4")
    assert as_kernel_input(be, "x", (np.float32,)).dtype.isnative


def test_check_scale_values_and_zero_points():
    check_scale_values(np.array([0.0, -0.0, 1.0]), "scale")
    with pytest.raises(ValueError, match=r"scale must be >= 0 and finite, got nan at flat"):
        check_scale_values(np.array([1.0, np.nan]), "scale")
    check_scale_values(np.array([np.nan, np.inf]), "scale", allow_nonfinite=True)
    with pytest.raises(ValueError, match=r"scale must be >= 0, got -inf"):
        check_scale_values(np.array([-np.inf]), "scale", allow_nonfinite=True)
    with pytest.raises(ValueError, match=r"amax must be > 0 and finite, got 0.0"):
        check_scale_values(np.array([0.0]), "amax", allow_zero=False)
    assert as_zero_point([3.0, -1], "zero_point", -8, 7).tolist() == [3, -1]
    with pytest.raises(ValueError, match=r"zero_point must hold integer values, got 0.5"):
        as_zero_point([0.5], "zero_point", -8, 7)
    with pytest.raises(ValueError, match=r"zero_point must be in \[qmin, qmax\] = \[-8, 7\], "
                                         r"got 8"):
        as_zero_point(np.array([8], np.uint64), "zero_point", -8, 7)
