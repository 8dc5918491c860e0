// Panamax's sample kernels: the patterns every later kernel is built from, each checked against a CPU reference on
// the emulated device and on a GPU (CudaKernelTest). Compiled to PTX by cuda/regenerate-ptx.sh and into the
// emulated device by the Maven build; pointer parameters are global_ptr<T> so the emulator can bounds-check them.
#include "panamax_kernel.h"

// Does nothing: launching it measures what a launch costs (SampleKernelsContract.emptyKernelLaunchOverhead).
extern "C" __global__ void empty_kernel() {}
PANAMAX_EXPORT(empty_kernel)

// c[i] = a[i] + b[i] for i < n, one thread per element; the grid may overhang n (a ragged last block).
extern "C" __global__ void vector_add(global_ptr<const float> a, global_ptr<const float> b, global_ptr<float> c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        c[i] = a[i] + b[i];
    }
}
PANAMAX_EXPORT(vector_add)

// partial[b] = the sum of x's elements b·blockDim.x .. (b+1)·blockDim.x − 1 (those below n), by a tree in dynamic
// shared memory. blockDim.x must be a power of two; the launch gives blockDim.x floats of dynamic shared memory.
extern "C" __global__ void block_sum(global_ptr<const float> x, global_ptr<float> partial, int n) {
    PANAMAX_DYNAMIC_SHARED(float, cache);
    unsigned t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    cache[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) {
            cache[t] += cache[t + half];
        }
        __syncthreads();
    }
    if (t == 0) {
        partial[blockIdx.x] = cache[0];
    }
}
PANAMAX_EXPORT(block_sum)

// The same sums as block_sum by warp shuffles: each warp reduces its 32 values with __shfl_down_sync, and the first
// warp reduces the warps' sums with __shfl_xor_sync. blockDim.x must be a multiple of 32.
extern "C" __global__ void warp_sum(global_ptr<const float> x, global_ptr<float> partial, int n) {
    __shared__ float warp_sums[32];
    unsigned t = threadIdx.x;
    unsigned lane = t % 32;
    unsigned warp = t / 32;
    int i = blockIdx.x * blockDim.x + t;
    float v = i < n ? x[i] : 0.0f;
    for (int delta = 16; delta > 0; delta /= 2) {
        v += __shfl_down_sync(0xffffffffu, v, delta);
    }
    if (lane == 0) {
        warp_sums[warp] = v;
    }
    __syncthreads();
    if (warp == 0) {
        v = lane < blockDim.x / 32 ? warp_sums[lane] : 0.0f;
        for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) {
            v += __shfl_xor_sync(0xffffffffu, v, lane_mask);
        }
        if (lane == 0) {
            partial[blockIdx.x] = v;
        }
    }
}
PANAMAX_EXPORT(warp_sum)

// count[0] += the number of x's elements above threshold: a warp vote (__ballot_sync) and one atomicAdd per warp.
// count is a float (exact below 2^24); blockDim.x must be a multiple of 32.
extern "C" __global__ void count_above(global_ptr<const float> x, global_ptr<float> count, int n, float threshold) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned votes = __ballot_sync(0xffffffffu, i < n && x[i] > threshold);
    if (threadIdx.x % 32 == 0) {
        atomicAdd(count, static_cast<float>(__popc(votes)));
    }
}
PANAMAX_EXPORT(count_above)

#define SGEMM_TILE 16

// Row-major C = alpha·A·B + beta·C (A m×k, B k×n, leading dimensions lda, ldb, ldc) by 16×16 tiles staged in shared
// memory: block (16, 16), grid (ceil(n / 16), ceil(m / 16)). With beta = 0, C is not read.
extern "C" __global__ void sgemm_tiled(int m, int n, int k, float alpha, global_ptr<const float> a, int lda,
        global_ptr<const float> b, int ldb, float beta, global_ptr<float> c, int ldc) {
    __shared__ float a_tile[SGEMM_TILE][SGEMM_TILE];
    __shared__ float b_tile[SGEMM_TILE][SGEMM_TILE + 1];
    int tx = threadIdx.x;
    int ty = threadIdx.y;
    int row = blockIdx.y * SGEMM_TILE + ty;
    int col = blockIdx.x * SGEMM_TILE + tx;
    float sum = 0.0f;
    for (int k0 = 0; k0 < k; k0 += SGEMM_TILE) {
        a_tile[ty][tx] = row < m && k0 + tx < k ? a[static_cast<long long>(row) * lda + k0 + tx] : 0.0f;
        b_tile[ty][tx] = k0 + ty < k && col < n ? b[static_cast<long long>(k0 + ty) * ldb + col] : 0.0f;
        __syncthreads();
        for (int kk = 0; kk < SGEMM_TILE; ++kk) {
            sum += a_tile[ty][kk] * b_tile[kk][tx];
        }
        __syncthreads();
    }
    if (row < m && col < n) {
        long long at = static_cast<long long>(row) * ldc + col;
        c[at] = beta == 0.0f ? alpha * sum : alpha * sum + beta * c[at];
    }
}
PANAMAX_EXPORT(sgemm_tiled)
