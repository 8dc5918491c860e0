#!/usr/bin/env bash
# Regenerates the committed FFM bindings in src/main/java/dev/panamax/cuda/ffi: CudaFfi (runtime and cuBLAS) from
# panamax_cuda.h with jextract.args, and CudaDriverFfi (driver API) from panamax_cuda_driver.h with jextract.driver.args.
# Needs only jextract (from PATH, or $JEXTRACT) and the headers; see ../README.md for versions and where they come from.
#   CUDA_RUNTIME_INCLUDE  folder with cuda_runtime_api.h and cuda.h, CUDA 13.0 (default /usr/local/cuda/include)
#   CUBLAS_INCLUDE        folder with cublas_v2.h, cuBLAS 11.11.3 from CUDA 11.8 (default /usr/include, Debian nvidia-cuda-dev)
set -euo pipefail

expected_jextract='jextract 23'
expected_cudart='13000'
expected_cublas='11.11.3'

here=$(cd "$(dirname "$0")" && pwd)
out="$here/../src/main/java"
jextract=${JEXTRACT:-jextract}
cudart_inc=${CUDA_RUNTIME_INCLUDE:-/usr/local/cuda/include}
cublas_inc=${CUBLAS_INCLUDE:-/usr/include}

die() { echo "regenerate.sh: $*" >&2; exit 1; }

command -v "$jextract" >/dev/null || die "jextract not found (put it on PATH or set JEXTRACT)"
version=$("$jextract" --version 2>&1)
echo "$version"
[[ $(head -n1 <<<"$version") == "$expected_jextract" ]] || die "needs '$expected_jextract', found '$(head -n1 <<<"$version")'"

[[ -f $cudart_inc/cuda_runtime_api.h ]] || die "no cuda_runtime_api.h in $cudart_inc (set CUDA_RUNTIME_INCLUDE)"
[[ -f $cudart_inc/cuda.h ]] || die "no cuda.h in $cudart_inc (set CUDA_RUNTIME_INCLUDE)"
[[ -f $cublas_inc/cublas_v2.h ]] || die "no cublas_v2.h in $cublas_inc (set CUBLAS_INCLUDE)"
cudart=$(sed -n 's/^#define CUDART_VERSION  *\([0-9]*\).*/\1/p' "$cudart_inc/cuda_runtime_api.h")
driver=$(sed -n 's/^#define CUDA_VERSION  *\([0-9]*\).*/\1/p' "$cudart_inc/cuda.h")
cublas=$(sed -n 's/^#define CUBLAS_VER_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' "$cublas_inc/cublas_api.h" | paste -sd.)
echo "CUDART_VERSION $cudart, CUDA_VERSION $driver ($cudart_inc), cuBLAS $cublas ($cublas_inc)"
[[ $cudart == "$expected_cudart" ]] || die "needs CUDART_VERSION $expected_cudart headers, found $cudart"
[[ $driver == "$expected_cudart" ]] || die "needs CUDA_VERSION $expected_cudart in cuda.h, found $driver"
[[ $cublas == "$expected_cublas" ]] || die "needs cuBLAS $expected_cublas headers, found $cublas"

rm -rf "$out/dev/panamax/cuda/ffi"
cd "$here"
# The runtime headers come first so that cuBLAS's own includes resolve to the CUDA 13 runtime types.
"$jextract" @jextract.args -I "$cudart_inc" -I "$cublas_inc" --output "$out" panamax_cuda.h 2> >(grep -v 'type LongDouble is not supported' >&2)
"$jextract" @jextract.driver.args -I "$cudart_inc" --output "$out" panamax_cuda_driver.h \
    2> >(grep -v 'type LongDouble is not supported' >&2)
echo "generated into $out/dev/panamax/cuda/ffi"
