/**
 * Panamax's GPU half: the CUDA runtime and cuBLAS through the FFM API, with no JNI; the one native build is the
 * optional emulated device (a C++ compiler makes it; without one its tests are skipped).
 *
 * <p>{@link dev.panamax.cuda.Cuda} finds the libraries and says why CUDA cannot run where it cannot; {@link
 * dev.panamax.cuda.DeviceBuffer}, {@link dev.panamax.cuda.PinnedBuffer}, {@link dev.panamax.cuda.CudaStream}, {@link
 * dev.panamax.cuda.CudaEvent} and {@link dev.panamax.cuda.Cublas} wrap device memory, streams, events and cuBLAS
 * handles with checked arguments and statuses. {@link dev.panamax.cuda.CudaModule} and {@link
 * dev.panamax.cuda.CudaKernel} load and launch Panamax's own kernels from PTX, on a GPU or on the emulated device
 * ({@link dev.panamax.cuda.Cuda#useEmulatedDevice()}), which runs the same CUDA C sources on the CPU and reports GPU
 * bugs as {@link dev.panamax.cuda.KernelFaultException}. The jextract-generated bindings underneath stay internal. On
 * the emulated device, cuBLAS's products are served by a {@link dev.panamax.cuda.spi.HostGemm} found with the {@link
 * java.util.ServiceLoader} ({@code dev.panamax.model} provides one over the kernels module).
 *
 * @uses dev.panamax.cuda.spi.HostGemm
 */
module dev.panamax.cuda {
    exports dev.panamax.cuda;
    exports dev.panamax.cuda.spi;

    uses dev.panamax.cuda.spi.HostGemm;
}
