"""Kernel diagnosis: name the variant a quantize / dequantize / fake-quant kernel implements.

* :mod:`refquant.diagnose.catalogue`: the axes of the deviation catalogue, their variants
  and one exact emulation per combination;
* :mod:`refquant.diagnose.search`: the search for inputs that tell every pair of variants of
  an axis apart (shipped as the ``diagnose`` conformance family);
* :mod:`refquant.diagnose.match`: the matcher behind ``refquant diagnose`` and
  :func:`refquant.testing.diagnose`;
* :mod:`refquant.diagnose.implementations`: the installed real implementations as kernels.
* :mod:`refquant.diagnose.cast`: the ``cast`` and ``mx`` families (element rounding,
  saturation, subnormals of a low-bit cast; the MX scale mode), with generated probes.

docs/conformance.md ("Naming the deviation") shows the command and the report.
"""

from __future__ import annotations

from .catalogue import AXES, BASE, FAMILIES, REFERENCES, emulate, single_deviations, variant_of

__all__ = ["AXES", "BASE", "FAMILIES", "REFERENCES", "emulate", "single_deviations",
           "variant_of"]
