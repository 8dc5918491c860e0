// The one header every Panamax kernel source (.cu) includes. Under nvcc it maps the portable spellings onto CUDA's
// own; under a host C++ compiler it pulls in the emulated device (../emulator/panamax_emulator.h), which implements
// the same names on the CPU with bounds-checked device pointers.
#pragma once

#ifdef __CUDACC__

#include <cuda_bf16.h>
#include <cuda_fp16.h>

// A pointer into device (global) memory, as a kernel parameter or a local derived from one.
template <class T>
using global_ptr = T*;

// Declares the launch's dynamic shared memory (the bytes given at launch) as an array of T named `name`.
#define PANAMAX_DYNAMIC_SHARED(T, name) extern __shared__ T name[]

// Lists a kernel in the emulated device's kernel table; nothing under nvcc.
#define PANAMAX_EXPORT(kernel)

// Unrolls the loop that follows, so that an array it indexes with the loop's counter stays in registers.
#define PANAMAX_UNROLL _Pragma("unroll")

// Keeps the loop that follows rolled: a rare path's loop, unrolled, would raise the registers of the whole kernel.
#define PANAMAX_NO_UNROLL _Pragma("unroll 1")

#else
#include "panamax_emulator.h"
#endif
