"""Shared argument checks: messages name the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest

from refquant._validation import (
    as_float_array,
    check_axis,
    check_bits,
    check_percent,
    check_positive_finite_scale,
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
