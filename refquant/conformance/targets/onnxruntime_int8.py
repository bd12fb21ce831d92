"""The ``onnxruntime-int8`` target: ONNX Runtime's CPU integer kernels, as deployed.

Each ``ort.*`` case (:mod:`refquant.conformance.cases.ort_int_cases`) becomes a one-node
model (``onnx.helper``; the activation inputs fed at run time, every other input an
initializer, as in a deployed model, which lets ORT prepack constant weights) run in ORT's
default CPU session (``ORT_ENABLE_ALL``, one thread). A case's expected outputs are those of
the MLAS variant named in its ``isa`` param; ORT runs the variant of the CPU it is on
(:func:`refquant.kernels.onnxruntime.host_isa`), so a case of another variant is
``Unsupported`` here, with both variants named: the suite holds on every machine, and each
machine checks the cases of its own variant.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format import Case
from ._base import Target, Unsupported

_OPSET = 21


def one_node_session(op: str, inputs: list[Any], out_types: list[int], *,
                     attrs: dict[str, Any] | None = None, domain: str = "",
                     consts: tuple[int, ...] = (),
                     config: dict[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
    """ONNX Runtime's default CPU session over one node ``op`` (opset 21; ``domain`` at
    version 1) and the feeds to run it with: ``inputs`` are arrays or ``None`` (an absent
    optional input), named ``in0``, ``in1``, ...; the indices in ``consts`` become
    initializers (constant weights, which ORT may prepack), the others graph inputs; one
    output ``out0``, ``out1``, ... per ONNX type in ``out_types``; ``config`` adds session
    config entries (e.g. ``session.x64quantprecision``)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    types = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
             np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int32): TensorProto.INT32}
    names: list[str] = []
    feeds: dict[str, Any] = {}
    graph_inputs, inits = [], []
    for i, v in enumerate(inputs):
        if v is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        v = np.asarray(v)
        if i in consts:
            inits.append(numpy_helper.from_array(v, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, types[v.dtype], v.shape))
            feeds[name] = v
    outs = [f"out{j}" for j in range(len(out_types))]
    node = helper.make_node(op, names, outs, domain=domain, **(attrs or {}))
    graph = helper.make_graph(
        [node], "g", graph_inputs,
        [helper.make_tensor_value_info(o, t, None) for o, t in zip(outs, out_types, strict=True)],
        initializer=inits)
    opsets = [helper.make_opsetid("", _OPSET)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    so = ort.SessionOptions()
    for key, value in (config or {}).items():
        so.add_session_config_entry(key, value)
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, feeds


class OnnxRuntimeInt8Target(Target):
    name = "onnxruntime-int8"
    requires = ("onnx", "onnxruntime")

    def _load(self) -> None:
        import onnxruntime as ort

        from ...kernels.onnxruntime import host_isa
        from ..cases.ort_int_cases import ORT_OPS

        self._ort = ort
        self._spec = ORT_OPS
        try:
            self._host: str | None = host_isa()
            self._why: str | None = None
        except ValueError as exc:  # a CPU whose MLAS kernels refquant does not emulate
            self._host, self._why = None, str(exc)
        for op in ORT_OPS:
            self.ops[op] = self._run_model

    def _model(self, case: Case) -> tuple[bytes, dict[str, np.ndarray]]:
        import onnx
        from onnx import helper, numpy_helper

        from ..cases.ort_int_cases import attributes

        op_type, domain, names, fed, outputs = self._spec[case.op]
        while names and names[-1] not in case.inputs:
            names = names[:-1]
        args, inits, graph_inputs, feeds = [], [], [], {}
        for name in names:
            arr = case.inputs.get(name)
            if arr is None:
                args.append("")
                continue
            args.append(name)
            if name in fed:
                graph_inputs.append(helper.make_tensor_value_info(
                    name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape)))
                feeds[name] = np.ascontiguousarray(arr)
            else:
                inits.append(numpy_helper.from_array(np.asarray(arr), name))
        node = helper.make_node(op_type, args, list(outputs), domain=domain,
                                **attributes(case.params))
        outs = [onnx.ValueInfoProto(name=o) for o in outputs]  # types left to inference
        graph = helper.make_graph([node], "case", graph_inputs, outs, initializer=inits)
        opsets = [helper.make_opsetid("", _OPSET)]
        if domain:
            opsets.append(helper.make_opsetid(domain, 1))
        model = helper.make_model(graph, opset_imports=opsets)
        model.ir_version = 10
        return model.SerializeToString(), feeds

    def _run_model(self, case: Case) -> dict[str, Any]:
        isa = case.params.get("isa")
        if self._host is None:
            raise Unsupported(f"onnxruntime-int8 target: case for isa {isa!r}; {self._why}")
        if isa != self._host:
            raise Unsupported(f"onnxruntime-int8 target: case for isa {isa!r}, this CPU runs "
                              f"isa {self._host!r}")
        ort = self._ort
        blob, feeds = self._model(case)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        names = list(self._spec[case.op][4])
        return dict(zip(names, sess.run(names, feeds), strict=True))


TARGET_CLASS = OnnxRuntimeInt8Target
