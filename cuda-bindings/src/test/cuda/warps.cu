// Every warp operation the emulated device implements, lane by lane (WarpOperations in SampleKernelsContract checks
// them against CUDA's documented semantics, on the emulated device and on a GPU alike). Values are small integers
// held in floats, exact either way.
#include "panamax_kernel.h"

// out[k · blockDim.x + t] is operation k's result in thread t, for in[t] as the thread's value and shuffle width
// `width` (a power of two up to 32). blockDim.x must be a multiple of 32.
extern "C" __global__ void warp_operations(global_ptr<const float> in, global_ptr<float> out, int width) {
    const unsigned full = 0xffffffffu;
    unsigned t = threadIdx.x;
    unsigned lane = t % 32;
    unsigned n = blockDim.x;
    float v = in[t];
    out[0 * n + t] = __shfl_sync(full, v, static_cast<int>(lane * 3 + 1), width);
    out[1 * n + t] = __shfl_up_sync(full, v, 3, width);
    out[2 * n + t] = __shfl_down_sync(full, v, 5, width);
    out[3 * n + t] = __shfl_xor_sync(full, v, 6, width);
    unsigned votes = __ballot_sync(full, v > 0.0f);
    out[4 * n + t] = static_cast<float>(votes & 0xffffu);
    out[5 * n + t] = static_cast<float>(votes >> 16);
    out[6 * n + t] = static_cast<float>(__any_sync(full, v > 40.0f));
    out[7 * n + t] = static_cast<float>(__all_sync(full, v > -40.0f));
    // Two half-warps shuffle at once, each among its own 16 lanes.
    unsigned half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    out[8 * n + t] = __shfl_sync(half, v, static_cast<int>((lane & ~15u) + (lane + 1) % 16));
    __syncwarp();
}
PANAMAX_EXPORT(warp_operations)
