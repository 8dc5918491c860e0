/*
 * The one header fed to jextract to generate dev.panamax.cuda.ffi (see README.md and regenerate.sh).
 * CUDA runtime API from the CUDA 13 toolkit headers; cuBLAS from the CUDA 11.8 headers, so that every bound
 * cuBLAS entry point (the _v2 names) exists in the 11, 12 and 13 sonames.
 */
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
