// The kernel CudaDriverGpuTest launches through the driver API. driver_test.ptx is generated from this file by
//   nvcc -ptx -arch=compute_80 -o driver_test.ptx driver_test.cu
// (its header names the nvcc version); never edit the PTX by hand.
extern "C" __global__ void scale_add(const float* x, float* y, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = a * x[i] + y[i];
    }
}
