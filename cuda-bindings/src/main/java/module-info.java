/**
 * Panamax's GPU half: the CUDA runtime and cuBLAS through the FFM API, with no JNI and no native build.
 *
 * <p>{@link dev.panamax.cuda.Cuda} finds the libraries and says why CUDA cannot run where it cannot; {@link
 * dev.panamax.cuda.DeviceBuffer}, {@link dev.panamax.cuda.PinnedBuffer}, {@link dev.panamax.cuda.CudaStream}, {@link
 * dev.panamax.cuda.CudaEvent} and {@link dev.panamax.cuda.Cublas} wrap device memory, streams, events and cuBLAS
 * handles with checked arguments and statuses. The jextract-generated bindings underneath stay internal. On the
 * emulated device, cuBLAS's products are served by a {@link dev.panamax.cuda.spi.HostGemm} found with the {@link
 * java.util.ServiceLoader} ({@code dev.panamax.model} provides one over the kernels module).
 *
 * @uses dev.panamax.cuda.spi.HostGemm
 */
module dev.panamax.cuda {
    exports dev.panamax.cuda;
    exports dev.panamax.cuda.spi;

    uses dev.panamax.cuda.spi.HostGemm;
}
