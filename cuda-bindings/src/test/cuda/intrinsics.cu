// Atomics and math intrinsics as kernels use them (SampleKernelsContract.atomicsAndMathIntrinsics checks the results
// on the emulated device and on a GPU). Every atomic result here is independent of the order threads run in.
#include "panamax_kernel.h"

// One block of blockDim.x threads, x holding small integers (as floats). out[0..3]: the largest and smallest
// 100·x[t] by atomicMax/atomicMin, the thread count by atomicAdd on an int, and how many threads won an atomicCAS
// race (one), then out[4]: the sum of x by atomicAdd on a shared float (exact for small integers). From out[8],
// five results per thread: __expf(x / 4), rsqrtf(|x| + 1), __fdividef(x, 3), __saturatef(x / 8), and
// __dadd_rn(__dmul_rn(a, 2 − a), −1) with a = 1 + x·2⁻³⁰, which is 0 where the product rounds before the sum (a·(2 − a)
// = 1 − x²·2⁻⁶⁰ rounds to 1) and −x²·2⁻⁶⁰ where the two are fused into one fma.
extern "C" __global__ void atomics_and_math(global_ptr<const float> x, global_ptr<float> out) {
    __shared__ int largest;
    __shared__ int smallest;
    __shared__ int count;
    __shared__ int winner;
    __shared__ int winners;
    __shared__ float sum;
    unsigned t = threadIdx.x;
    if (t == 0) {
        largest = -1000000;
        smallest = 1000000;
        count = 0;
        winner = -1;
        winners = 0;
        sum = 0.0f;
    }
    __syncthreads();
    float v = x[t];
    int scaled = static_cast<int>(v * 100.0f);
    atomicMax(&largest, scaled);
    atomicMin(&smallest, scaled);
    atomicAdd(&count, 1);
    if (atomicCAS(&winner, -1, static_cast<int>(t)) == -1) {
        atomicAdd(&winners, 1);
    }
    atomicAdd(&sum, v);
    out[8 + 5 * t] = __expf(v / 4.0f);
    out[8 + 5 * t + 1] = rsqrtf(fabsf(v) + 1.0f);
    out[8 + 5 * t + 2] = __fdividef(v, 3.0f);
    out[8 + 5 * t + 3] = __saturatef(v / 8.0f);
    double a = 1.0 + static_cast<double>(v) * 0x1p-30;
    out[8 + 5 * t + 4] = static_cast<float>(__dadd_rn(__dmul_rn(a, 2.0 - a), -1.0));
    __syncthreads();
    if (t == 0) {
        out[0] = static_cast<float>(largest);
        out[1] = static_cast<float>(smallest);
        out[2] = static_cast<float>(count);
        out[3] = static_cast<float>(winners);
        out[4] = sum;
    }
}
PANAMAX_EXPORT(atomics_and_math)
