#!/bin/sh
# Build the example QuantizeLinear kernel with the system C compiler.
# Usage: sh build.sh [OUT_DIR]   (default: ./build); CC overrides the compiler.
# No -ffast-math and no FMA contraction: the kernel must do one float32 division.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/build"}
mkdir -p "$out"
${CC:-cc} -std=c99 -O2 -ffp-contract=off -Wall -Wextra -o "$out/quantize_linear" \
    "$here/quantize_linear.c" -lm
echo "$out/quantize_linear"
