// Kernels with the bugs the emulated device must expose (EmulatedFaultTest): each one is wrong on purpose, and a
// launch must end in a KernelFaultException naming the kernel, block and thread, never a hang or a crash. Only
// compiled to PTX so CudaModule can load them; they are not meant for a GPU, where they hang or corrupt memory.
#include "panamax_kernel.h"

// Threads 16 and up return before the barrier that threads 0-15 wait at.
extern "C" __global__ void barrier_after_exit(global_ptr<float> out) {
    if (threadIdx.x >= 16) {
        return;
    }
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}
PANAMAX_EXPORT(barrier_after_exit)

// Odd and even threads wait at two different barriers.
extern "C" __global__ void barriers_apart(global_ptr<float> out) {
    if (threadIdx.x % 2 == 0) {
        __syncthreads();
        out[threadIdx.x] = 1.0f;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}
PANAMAX_EXPORT(barriers_apart)

// Writes out[i] for every thread of the grid without checking i < n: the ragged last block writes past the end.
extern "C" __global__ void unchecked_write(global_ptr<float> out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = static_cast<float>(n);
}
PANAMAX_EXPORT(unchecked_write)

// Writes one element before the start of its buffer.
extern "C" __global__ void write_before_start(global_ptr<float> out) {
    global_ptr<float> before = out - 1;
    *before = 1.0f;
}
PANAMAX_EXPORT(write_before_start)

// Indexes a static shared array of 32 floats by threadIdx.x, which may be larger.
extern "C" __global__ void shared_overrun(global_ptr<float> out) {
    __shared__ float values[32];
    values[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = values[threadIdx.x];
}
PANAMAX_EXPORT(shared_overrun)

// Lanes 16-31 skip a full-warp shuffle that lanes 0-15 wait at.
extern "C" __global__ void half_warp_shuffle(global_ptr<float> out) {
    float v = static_cast<float>(threadIdx.x);
    if (threadIdx.x % 32 < 16) {
        v = __shfl_down_sync(0xffffffffu, v, 1);
    }
    out[threadIdx.x] = v;
}
PANAMAX_EXPORT(half_warp_shuffle)

// Each thread reads its neighbour's shared slot without a barrier after the writes: the result depends on the order
// the threads run in, which the emulated device varies with the schedule seed.
extern "C" __global__ void missing_barrier(global_ptr<float> out) {
    __shared__ float values[64];
    unsigned t = threadIdx.x;
    values[t] = static_cast<float>(t);
    out[t] = values[(t + 1) % blockDim.x];
}
PANAMAX_EXPORT(missing_barrier)

// Lanes 0-15 shuffle among themselves but read lane 20, which their mask leaves out.
extern "C" __global__ void shuffle_outside_mask(global_ptr<float> out) {
    float v = static_cast<float>(threadIdx.x);
    if (threadIdx.x < 16) {
        v = __shfl_sync(0x0000ffffu, v, 20);
    }
    out[threadIdx.x] = v;
}
PANAMAX_EXPORT(shuffle_outside_mask)

// Each lane calls a shuffle with a mask that names only the next lane, not itself.
extern "C" __global__ void mask_without_caller(global_ptr<float> out) {
    unsigned next = 1u << ((threadIdx.x + 1) % 32);
    out[threadIdx.x] = __shfl_sync(next, 1.0f, 0);
}
PANAMAX_EXPORT(mask_without_caller)

// Integer division by a divisor the launch passes, here 0.
extern "C" __global__ void divide(global_ptr<float> out, int divisor) {
    out[threadIdx.x] = static_cast<float>(static_cast<int>(threadIdx.x) / divisor);
}
PANAMAX_EXPORT(divide)

// Thread 3 of block 1 traps.
extern "C" __global__ void trap_in_one_thread(global_ptr<float> out) {
    if (blockIdx.x == 1 && threadIdx.x == 3) {
        __trap();
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}
PANAMAX_EXPORT(trap_in_one_thread)

// One level of a recursion that keeps 1 KiB of locals per level and stores through out at each, where the emulator
// checks the thread's stack.
__device__ float recurse(global_ptr<float> out, int depth) {
    volatile char locals[1024];
    for (int i = 0; i < 1024; i += 64) {
        locals[i] = static_cast<char>(depth);
    }
    out[threadIdx.x] = static_cast<float>(depth);
    return depth == 0 ? 0.0f : recurse(out, depth - 1) + locals[64];
}

// Recurses depth levels deep in every thread: about depth KiB of stack, past the emulator's 256 KiB from 256 on.
extern "C" __global__ void deep_recursion(global_ptr<float> out, int depth) {
    out[threadIdx.x] = recurse(out, depth);
}
PANAMAX_EXPORT(deep_recursion)
