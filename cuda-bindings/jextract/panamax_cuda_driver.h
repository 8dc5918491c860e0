/*
 * The header fed to jextract to generate dev.panamax.cuda.ffi.CudaDriverFfi, the CUDA driver API (see README.md and
 * regenerate.sh), from the CUDA 13 toolkit's cuda.h. cuda.h maps some names to versioned symbols
 * (cuDevicePrimaryCtxRelease to cuDevicePrimaryCtxRelease_v2); jextract.driver.args names the versioned symbols,
 * which every CUDA 11 to 13 driver's libcuda.so.1 exports. CUDA_API_PER_THREAD_DEFAULT_STREAM stays undefined, so
 * cuLaunchKernel is the legacy-default-stream symbol, as the runtime bindings use.
 */
#include <cuda.h>
