#!/usr/bin/env bash
# Builds an emulated-device kernel library: emulator.cpp plus the given kernel sources (.cu, compiled as C++ against
# panamax_emulator.h), linked into one shared library that dev.panamax.cuda.EmulatedDevice loads through FFM.
#
#   build-emulator.sh OUTPUT.so SOURCE.cu...
#
# The compiler is $CXX, else g++ (C++20: g++ 10 or newer; the build is tested with g++ 12). Without one, the script
# writes OUTPUT.so.unavailable with the reason and succeeds, so the Java build passes and the emulator's tests are
# skipped with that reason (or fail, under -Dpanamax.cuda.requireEmulator=true). A compile error fails the build.
set -euo pipefail

output="$1"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
include="$(cd "$here/../cuda" && pwd)"
module="$(cd "$here/../../.." && pwd)"
compiler="${CXX:-g++}"
mkdir -p "$(dirname "$output")"
rm -f "$output.unavailable"

if ! command -v "$compiler" > /dev/null 2>&1; then
    echo "emulated device not built: no C++ compiler ($compiler) on PATH" | tee "$output.unavailable" >&2
    rm -f "$output"
    exit 0
fi

inputs=("$here/emulator.cpp" "$here/panamax_emulator.h" "$include/panamax_kernel.h" "${BASH_SOURCE[0]}" "$@")
up_to_date=true
for input in "${inputs[@]}"; do
    if [[ ! -e "$output" || "$input" -nt "$output" ]]; then
        up_to_date=false
    fi
done
if $up_to_date; then
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# No contraction of a*b + c into an FMA: g++ contracts by default for C++ on targets that have one (aarch64), which
# would round differently from the GPU's explicit __dmul_rn/__fmul_rn and from Java's float arithmetic.
flags=(-std=c++20 -O2 -g -fPIC -fvisibility=hidden -ffp-contract=off -Wall -Wextra -Werror -I"$here" -I"$include")
# Kernel code only: g++'s checks of array indexes (static __shared__ arrays) and integer division report to the
# handlers in emulator.cpp, which turn them into kernel faults instead of crashing the JVM.
kernel_flags=(-fsanitize=bounds,integer-divide-by-zero -fno-sanitize-recover=all)
# Where the compiler has them (each is feature-tested, so older compilers still build): uninitialised locals get a
# pattern (0xFE bytes) rather than the zeros a fresh fiber stack holds, which would pass for a correctly cleared
# accumulator (g++ 12); a frame larger than a page touches each of its pages in order, so it cannot step over a fiber
# stack's guard page into another stack.
for option in -ftrivial-auto-var-init=pattern -fstack-clash-protection; do
    if echo 'int main() { return 0; }' | "$compiler" -x c++ "$option" -Werror -fsyntax-only - > /dev/null 2>&1; then
        kernel_flags+=("$option")
    fi
done
"$compiler" "${flags[@]}" -c "$here/emulator.cpp" -o "$work/emulator.o"
objects=("$work/emulator.o")
for source in "$@"; do
    object="$work/$(basename "$source" .cu).o"
    # Compiled by its path relative to the module, which fault messages then name: src/main/cuda/samples.cu (by prefix,
    # not GNU realpath --relative-to, which macOS lacks; a source outside the module keeps its own path).
    (cd "$module" && "$compiler" "${flags[@]}" "${kernel_flags[@]}" -x c++ -c "${source#"$module"/}" -o "$object")
    objects+=("$object")
done
"$compiler" -shared -o "$output.tmp" "${objects[@]}"
mv "$output.tmp" "$output"
echo "emulated device: built $output with $("$compiler" --version | head -n 1)"
