"""What each node of a rewritten graph computes: integer kernels exactly, float ops in float32.

Integer nodes (``QLinearConv``, ``MatMulIntegerToFloat``, ...) call
:mod:`refquant.kernels.onnxruntime`, which computes ONNX Runtime's bits. Float operators
(an unfused ``Conv``, ``BatchNormalization``, ``Softmax``, ...) are written in float32 NumPy
following the ONNX definitions; MLAS sums convolutions and matrix products in another order,
so their last bits may differ from ONNX Runtime's (the session's plan says which nodes are
float). ``QuantizeLinear`` / ``DequantizeLinear`` follow ONNX Runtime's CPU kernels bit for
bit: ``q = clip(rne(fl32(x / s)) + zp)`` (MLAS ``MlasQuantizeLinear``,
``onnxruntime/core/mlas/lib/quantize.cpp``) and ``x = fl32(float32(q - zp) * s)``
(``onnxruntime/core/providers/cpu/quantization/quantize_linear.cc``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...kernels import onnxruntime as rk
from ...kernels.onnxruntime._common import qrange

__all__ = ["INTEGER_OPS", "run_node", "supported"]

F32 = np.float32
Array = np.ndarray


class NodeError(ValueError):
    """A node that cannot be run, with the node's name and op type in the message."""


def _per_axis(p: Array, x: Array, axis: int) -> Array:
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    shape = [1] * x.ndim
    shape[axis % x.ndim] = p.size
    return p.reshape(shape)


def quantize_linear(x: Array, s: Array, zp: Array | None, axis: int = 1) -> Array:
    dtype = np.dtype(np.uint8) if zp is None else zp.dtype
    qmin, qmax = qrange(dtype)
    s = _per_axis(np.asarray(s, F32), x, axis)
    z = np.zeros((), np.int32) if zp is None else _per_axis(zp.astype(np.int32), x, axis)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = (np.asarray(x, F32) / s).astype(F32)
    lo, hi = (qmin - z).astype(F32), (qmax - z).astype(F32)
    v = np.where(np.isnan(v), lo, v)
    v = np.minimum(np.maximum(v, lo), hi)
    return (np.rint(v).astype(np.int32) + z).astype(dtype)


def dequantize_linear(q: Array, s: Array, zp: Array | None, axis: int = 1) -> Array:
    s = _per_axis(np.asarray(s, F32), q, axis)
    z = np.zeros((), np.int64) if zp is None else _per_axis(zp.astype(np.int64), q, axis)
    diff = q.astype(np.int64) - z
    if q.dtype == np.int32:
        diff = ((diff + 2**31) % 2**32 - 2**31)
    return (diff.astype(F32) * s).astype(F32)


# -- float helpers ----------------------------------------------------------------------
def _pads(attrs: dict, spatial: tuple[int, ...], kernel: tuple[int, ...],
          strides: tuple[int, ...], dil: tuple[int, ...]) -> tuple[list[int], list[int]]:
    r = len(spatial)
    mode = attrs.get("auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(r):
            dk = dil[i] * (kernel[i] - 1) + 1
            need = max(0, (-(-spatial[i] // strides[i]) - 1) * strides[i] + dk - spatial[i])
            head = need // 2 if mode == "SAME_UPPER" else need - need // 2
            begin.append(head)
            end.append(need - head)
        return begin, end
    if mode == "VALID":
        return [0] * r, [0] * r
    p = list(attrs.get("pads", [0] * (2 * r)))
    return p[:r], p[r:]


def _windows(x: Array, kernel: tuple[int, ...], strides: tuple[int, ...],
             dil: tuple[int, ...], begin: list[int], end: list[int], fill: Any,
             ceil_mode: int = 0) -> Array:
    """[N, C, *out, *kernel] windows of ``x`` padded with ``fill``."""
    r = len(kernel)
    out = []
    extra = []
    for i in range(r):
        size = x.shape[2 + i] + begin[i] + end[i]
        dk = dil[i] * (kernel[i] - 1) + 1
        v = (size - dk) / strides[i] + 1
        o = math.ceil(v) if ceil_mode else math.floor(v)
        if ceil_mode and (o - 1) * strides[i] >= x.shape[2 + i] + begin[i]:
            o -= 1
        out.append(o)
        extra.append(max(0, (o - 1) * strides[i] + dk - size))
    widths = [(0, 0), (0, 0)] + [(begin[i], end[i] + extra[i]) for i in range(r)]
    xp = np.pad(x, widths, constant_values=fill)
    span = tuple(dil[i] * (kernel[i] - 1) + 1 for i in range(r))
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + r)))
    index = (slice(None), slice(None)) + tuple(
        slice(0, (out[i] - 1) * strides[i] + 1, strides[i]) for i in range(r)
    ) + tuple(slice(None, None, dil[i]) for i in range(r))
    return win[index]


def _conv_float(x: Array, w: Array, b: Array | None, attrs: dict) -> Array:
    r = x.ndim - 2
    kernel = tuple(w.shape[2:])
    st = tuple(attrs.get("strides", [1] * r))
    dl = tuple(attrs.get("dilations", [1] * r))
    begin, end = _pads(attrs, x.shape[2:], kernel, st, dl)
    g = int(attrs.get("group", 1))
    win = _windows(x.astype(F32), kernel, st, dl, begin, end, 0.0)  # [N, C, *out, *k]
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    out_sp = win.shape[2:2 + r]
    outs = []
    for gi in range(g):
        xs = win[:, gi * cg:(gi + 1) * cg]  # [N, cg, *out, *k]
        xs = np.moveaxis(xs, 1, 1 + r).reshape(n, int(np.prod(out_sp)), -1)  # [N, P, cg*k]
        ws = w[gi * (m // g):(gi + 1) * (m // g)].reshape(m // g, -1).astype(F32)
        outs.append(np.matmul(xs, ws.T))
    y = np.concatenate(outs, axis=-1).transpose(0, 2, 1).reshape((n, m) + out_sp)
    if b is not None:
        y = y + b.astype(F32).reshape((1, m) + (1,) * r)
    return y.astype(F32)


def _activation(name: str, x: Array, params: list[float]) -> Array:
    if name == "Relu":
        return np.maximum(x, F32(0))
    if name == "LeakyRelu":
        a = F32(params[0] if params else 0.01)
        return np.where(x >= 0, x, (x * a).astype(F32)).astype(F32)
    if name == "Clip":
        return np.clip(x, F32(params[0]), F32(params[1])).astype(F32)
    if name == "Sigmoid":
        return (F32(1) / (F32(1) + np.exp(-x))).astype(F32)
    if name == "Tanh":
        return np.tanh(x).astype(F32)
    if name == "HardSigmoid":
        a, b = (params + [0.2, 0.5])[:2]
        return np.clip(x * F32(a) + F32(b), 0, 1).astype(F32)
    raise NodeError(f"activation {name!r} is not supported")


def _pool(x: Array, attrs: dict, kind: str) -> Array:
    r = x.ndim - 2
    kernel = tuple(attrs["kernel_shape"])
    st = tuple(attrs.get("strides", [1] * r))
    dl = tuple(attrs.get("dilations", [1] * r))
    begin, end = _pads(attrs, x.shape[2:], kernel, st, dl)
    ceil_mode = int(attrs.get("ceil_mode", 0))
    axes = tuple(range(-r, 0))
    if kind == "max":
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        return _windows(x, kernel, st, dl, begin, end, fill, ceil_mode).max(axis=axes)
    win = _windows(x.astype(F32), kernel, st, dl, begin, end, np.nan, ceil_mode)
    valid = ~np.isnan(win)
    total = np.where(valid, win, F32(0)).sum(axis=axes, dtype=F32)
    if int(attrs.get("count_include_pad", 0)):
        count = F32(np.prod(kernel))
    else:
        count = valid.sum(axis=axes).astype(F32)
    return (total / count).astype(F32)


def _np_slice(x: Array, starts: Array, ends: Array, axes: Array | None,
              steps: Array | None) -> Array:
    axes = np.arange(len(starts)) if axes is None else axes
    steps = np.ones(len(starts), np.int64) if steps is None else steps
    idx: list[Any] = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a = int(a) % x.ndim
        size = x.shape[a]
        s, e, st = int(s), int(e), int(st)
        s = max(-size - 1, min(size, s)) if st < 0 else max(-size, min(size, s))
        e = max(-size - 1, min(size, e))
        if e == -size - 1:
            e = None  # type: ignore[assignment]
        idx[a] = slice(s, e, st)
    return x[tuple(idx)]


def _reshape(x: Array, shape: Array, allowzero: int = 0) -> Array:
    dims = [int(v) for v in shape]
    if not allowzero:
        dims = [x.shape[i] if v == 0 else v for i, v in enumerate(dims)]
    return x.reshape(dims)


def _unsqueeze(x: Array, axes: Any) -> Array:
    rank = x.ndim + len(axes)
    y = x
    for a in sorted(int(v) % rank for v in axes):
        y = np.expand_dims(y, a)
    return y


def _axes(node: Any, vals: list[Any], i: int) -> Any:
    if len(vals) > i and vals[i] is not None:
        return [int(v) for v in vals[i]]
    return node.attrs.get("axes")


def _softmax(x: Array, axis: int) -> Array:
    e = np.exp((x - x.max(axis=axis, keepdims=True)).astype(F32))
    return (e / e.sum(axis=axis, keepdims=True, dtype=F32)).astype(F32)


def _gemm(a: Array, b: Array, c: Array | None, at: dict) -> Array:
    a2 = a.T if at.get("transA", 0) else a
    b2 = b.T if at.get("transB", 0) else b
    y = (np.matmul(a2.astype(F32), b2.astype(F32)) * F32(at.get("alpha", 1.0))).astype(F32)
    if c is not None:
        y = (y + F32(at.get("beta", 1.0)) * c.astype(F32)).astype(F32)
    return y


# Each entry: (node, inputs) -> list of outputs. ``None`` inputs are absent optional ones.
FLOAT_OPS: dict[str, Callable[[Any, list[Any]], list[Any]]] = {
    "Identity": lambda n, v: [v[0]],
    "Relu": lambda n, v: [_activation("Relu", v[0], [])],
    "LeakyRelu": lambda n, v: [_activation("LeakyRelu", v[0], [n.attrs.get("alpha", 0.01)])],
    "Sigmoid": lambda n, v: [_activation("Sigmoid", v[0], [])],
    "Tanh": lambda n, v: [_activation("Tanh", v[0], [])],
    "Clip": lambda n, v: [np.clip(
        v[0], v[1] if len(v) > 1 and v[1] is not None else n.attrs.get("min", -np.inf),
        v[2] if len(v) > 2 and v[2] is not None else n.attrs.get("max", np.inf)
    ).astype(v[0].dtype)],
    "Softmax": lambda n, v: [_softmax(v[0], int(n.attrs.get("axis", -1)))],
    "Add": lambda n, v: [np.add(v[0], v[1])],
    "Sub": lambda n, v: [np.subtract(v[0], v[1])],
    "Mul": lambda n, v: [np.multiply(v[0], v[1])],
    "Div": lambda n, v: [np.divide(v[0], v[1]) if v[0].dtype.kind == "f"
                         else (v[0] // v[1]).astype(v[0].dtype)],
    "MatMul": lambda n, v: [np.matmul(v[0], v[1])],
    "Gemm": lambda n, v: [_gemm(v[0], v[1], v[2] if len(v) > 2 else None, n.attrs)],
    "Conv": lambda n, v: [_conv_float(v[0], v[1], v[2] if len(v) > 2 else None, n.attrs)],
    "FusedConv": lambda n, v: [_activation(
        n.attrs["activation"],
        _conv_float(v[0], v[1], v[2] if len(v) > 2 else None, n.attrs),
        list(n.attrs.get("activation_params", [])))],
    "FusedGemm": lambda n, v: [_activation(
        n.attrs["activation"], _gemm(v[0], v[1], v[2] if len(v) > 2 else None, n.attrs),
        list(n.attrs.get("activation_params", [])))],
    "BatchNormalization": lambda n, v: [(
        (v[0] - _per_axis(v[3], v[0], 1)) / np.sqrt(_per_axis(v[4], v[0], 1)
                                                    + F32(n.attrs.get("epsilon", 1e-5)))
        * _per_axis(v[1], v[0], 1) + _per_axis(v[2], v[0], 1)).astype(F32)],
    "MaxPool": lambda n, v: [_pool(v[0], n.attrs, "max")],
    "AveragePool": lambda n, v: [_pool(v[0], n.attrs, "avg")],
    "GlobalAveragePool": lambda n, v: [
        v[0].mean(axis=tuple(range(2, v[0].ndim)), keepdims=True, dtype=F32)],
    "GlobalMaxPool": lambda n, v: [v[0].max(axis=tuple(range(2, v[0].ndim)), keepdims=True)],
    "Reshape": lambda n, v: [_reshape(v[0], v[1], n.attrs.get("allowzero", 0))],
    "Flatten": lambda n, v: [v[0].reshape(
        int(np.prod(v[0].shape[:int(n.attrs.get("axis", 1)) % (v[0].ndim + 1)])), -1)],
    "Transpose": lambda n, v: [np.transpose(v[0], n.attrs.get("perm"))],
    "Squeeze": lambda n, v: [np.squeeze(v[0], axis=None if _axes(n, v, 1) is None
                                        else tuple(_axes(n, v, 1)))],
    "Unsqueeze": lambda n, v: [_unsqueeze(v[0], _axes(n, v, 1))],
    "Slice": lambda n, v: [_np_slice(v[0], v[1], v[2], v[3] if len(v) > 3 else None,
                                     v[4] if len(v) > 4 else None)],
    "Concat": lambda n, v: [np.concatenate(v, axis=int(n.attrs["axis"]))],
    "Shape": lambda n, v: [np.asarray(v[0].shape, np.int64)[
        n.attrs.get("start", 0):n.attrs.get("end", None)]],
    "Gather": lambda n, v: [np.take(v[0], v[1], axis=int(n.attrs.get("axis", 0)))],
    "GatherElements": lambda n, v: [np.take_along_axis(
        v[0], v[1].astype(np.int64) % v[0].shape[int(n.attrs.get("axis", 0))],
        axis=int(n.attrs.get("axis", 0)))],
    "Tile": lambda n, v: [np.tile(v[0], [int(r) for r in v[1]])],
    "Expand": lambda n, v: [v[0] * np.ones([int(d) for d in v[1]], v[0].dtype)],
    "Cast": lambda n, v: [v[0].astype(_onnx_dtype(int(n.attrs["to"])))],
    "ArgMax": lambda n, v: [_argmax(v[0], n.attrs)],
    "Sqrt": lambda n, v: [np.sqrt(v[0])],
    "Pow": lambda n, v: [np.power(v[0], v[1]).astype(v[0].dtype)],
}


def _argmax(x: Array, attrs: dict) -> Array:
    axis = int(attrs.get("axis", 0))
    if attrs.get("select_last_index", 0):
        y = x.shape[axis] - 1 - np.argmax(np.flip(x, axis), axis=axis)
    else:
        y = np.argmax(x, axis=axis)
    y = y.astype(np.int64)
    return np.expand_dims(y, axis) if attrs.get("keepdims", 1) else y


def _onnx_dtype(code: int) -> np.dtype:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(code))


def _q(n: Any, v: list[Any]) -> list[Any]:
    return [quantize_linear(v[0], v[1], v[2] if len(v) > 2 else None,
                            int(n.attrs.get("axis", 1)))]


def _dq(n: Any, v: list[Any]) -> list[Any]:
    return [dequantize_linear(v[0], v[1], v[2] if len(v) > 2 else None,
                              int(n.attrs.get("axis", 1)))]


FLOAT_OPS["QuantizeLinear"] = _q
FLOAT_OPS["DequantizeLinear"] = _dq


def _conv_attrs(a: dict) -> dict:
    keys = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
    return {k: a[k] for k in keys if k in a}


def _opt(v: list[Any], i: int) -> Any:
    return v[i] if len(v) > i else None


def _weights(n: Any, v: list[Any], w_index: int, zp_index: int) -> tuple[Any, Any]:
    return v[w_index], _opt(v, zp_index)


def _qlinear_conv(n: Any, v: list[Any], isa: str) -> list[Any]:
    w, wz = _weights(n, v, 3, 5)
    return [rk.qlinear_conv(v[0], v[1], v[2], w, v[4], wz, v[6], v[7], _opt(v, 8),
                            isa=isa, **_conv_attrs(n.attrs))]


def _qlinear_matmul(n: Any, v: list[Any], isa: str) -> list[Any]:
    w, wz = _weights(n, v, 3, 5)
    return [rk.qlinear_matmul(v[0], v[1], v[2], w, v[4], wz, v[6], v[7], isa=isa)]


def _mmitf(n: Any, v: list[Any], isa: str) -> list[Any]:
    w, wz = _weights(n, v, 1, 5)
    return [rk.matmul_integer_to_float(v[0], w, v[2], v[3], _opt(v, 4), wz, _opt(v, 6),
                                       isa=isa)]


def _qgemm(n: Any, v: list[Any], isa: str) -> list[Any]:
    w, wz = _weights(n, v, 3, 5)
    a = n.attrs
    return [rk.qgemm(v[0], v[1], v[2], w, v[4], wz, _opt(v, 6), _opt(v, 7), _opt(v, 8),
                     alpha=a.get("alpha", 1.0), transA=a.get("transA", 0),
                     transB=a.get("transB", 0), isa=isa)]


def _dynamic_matmul(v: list[Any], isa: str) -> Array:
    """``com.microsoft.DynamicQuantizeMatMul(A, B, b_scale, b_zero_point, bias)``
    (``contrib_ops/cpu/quantization/dynamic_quantize_matmul.cc``): ``A`` quantized by
    ``DynamicQuantizeLinear``, then ``MatMulIntegerToFloat``."""
    a, sa, za = rk.dynamic_quantize_linear(v[0])
    return rk.matmul_integer_to_float(a, v[1], sa, v[2], za, _opt(v, 3), _opt(v, 4), isa=isa)


def _binary(fn: Callable[..., Array]) -> Callable[[Any, list[Any], str], list[Any]]:
    return lambda n, v, isa: [fn(*v[:8], isa=isa)]


def _pool_attrs(a: dict, keys: tuple[str, ...]) -> dict:
    return {k: a[k] for k in keys if k in a}


INTEGER_OPS: dict[str, Callable[[Any, list[Any], str], list[Any]]] = {
    "QLinearConv": _qlinear_conv,
    "QLinearMatMul": _qlinear_matmul,
    "MatMulIntegerToFloat": _mmitf,
    "QGemm": _qgemm,
    "QLinearAdd": _binary(rk.qlinear_add),
    "QLinearMul": _binary(rk.qlinear_mul),
    "QLinearAveragePool": lambda n, v, isa: [rk.qlinear_average_pool(
        *v[:5], isa=isa, **_pool_attrs(n.attrs, (
            "kernel_shape", "auto_pad", "ceil_mode", "count_include_pad", "pads", "strides",
            "channels_last")))],
    "QLinearGlobalAveragePool": lambda n, v, isa: [rk.qlinear_global_average_pool(
        *v[:5], isa=isa, channels_last=n.attrs.get("channels_last", 0))],
    "QLinearLeakyRelu": lambda n, v, isa: [rk.qlinear_leaky_relu(
        *v[:5], alpha=n.attrs.get("alpha", 0.01), isa=isa)],
    "QLinearSigmoid": lambda n, v, isa: [rk.qlinear_sigmoid(*v[:5], isa=isa)],
    "MatMulInteger": lambda n, v, isa: [rk.matmul_integer(
        v[0], v[1], _opt(v, 2), _opt(v, 3), isa=isa)],
    "ConvInteger": lambda n, v, isa: [rk.conv_integer(
        v[0], v[1], _opt(v, 2), _opt(v, 3), isa=isa, **_conv_attrs(n.attrs))],
    "DynamicQuantizeLinear": lambda n, v, isa: list(rk.dynamic_quantize_linear(v[0])),
    "DynamicQuantizeMatMul": lambda n, v, isa: [_dynamic_matmul(v, isa)],
    "QLinearConcat": lambda n, v, isa: [rk.qlinear_concat(
        *v, axis=int(n.attrs["axis"]), isa=isa)],
}


def supported(op: str) -> bool:
    """Whether a node of this op type can run."""
    return op in INTEGER_OPS or op in FLOAT_OPS


def run_node(node: Any, values: list[Any], isa: str) -> list[Any]:
    """The outputs of ``node`` on ``values`` (``None`` for absent optional inputs)."""
    try:
        if node.op in INTEGER_OPS:
            return INTEGER_OPS[node.op](node, values, isa)
        fn = FLOAT_OPS.get(node.op)
        if fn is None:
            raise NodeError(f"node {node.name!r}: op type {node.op!r} is not emulated")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return fn(node, values)
    except NodeError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise NodeError(f"node {node.name!r} ({node.op}): {exc}") from exc
