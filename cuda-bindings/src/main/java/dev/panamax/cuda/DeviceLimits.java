package dev.panamax.cuda;

/**
 * What one launch may ask of a device, checked by {@link CudaKernel#launch} before the driver sees the launch.
 *
 * @param maxThreadsPerBlock threads in one block, all dimensions together
 * @param maxBlock the largest block extent in each dimension
 * @param maxGrid the largest grid extent in each dimension
 * @param maxSharedMemoryPerBlock shared memory a block gets without opting in (48 KiB on every current GPU)
 * @param maxSharedMemoryPerBlockOptin shared memory a block may get when the kernel opts in, which {@link CudaKernel}
 *     does for launches that need it
 * @param warpSize threads per warp
 * @param multiprocessors streaming multiprocessors, for sizing grids to fill the device (the emulated device reports an
 *     H100's 132, or {@link Cuda#EMULATED_MULTIPROCESSORS_PROPERTY}, though it runs one block at a time)
 */
public record DeviceLimits(
        int maxThreadsPerBlock,
        Dim3 maxBlock,
        Dim3 maxGrid,
        int maxSharedMemoryPerBlock,
        int maxSharedMemoryPerBlockOptin,
        int warpSize,
        int multiprocessors) {
    /**
     * The emulated device's limits: those of an H100 SXM (compute capability 9.0, 132 multiprocessors), so that code
     * sizing its launches from them takes the choices it takes on that GPU.
     */
    public static final DeviceLimits EMULATED = new DeviceLimits(
            1024, new Dim3(1024, 1024, 64), new Dim3(Integer.MAX_VALUE, 65535, 65535), 48 * 1024, 227 * 1024, 32, 132);

    /**
     * The limits of the calling thread's current device: the emulated one when {@link Cuda#useEmulatedDevice()} chose
     * it, else the current GPU.
     *
     * @return its limits
     * @throws CudaUnavailableException when neither the emulated device is chosen nor CUDA available
     */
    public static DeviceLimits current() {
        return EmulatedDevice.isSelected() ? emulated() : DriverKernels.limits();
    }

    /** {@link #EMULATED}, with the multiprocessors of {@link Cuda#EMULATED_MULTIPROCESSORS_PROPERTY} where it is set. */
    static DeviceLimits emulated() {
        int multiprocessors = EmulatedDevice.multiprocessors(EMULATED.multiprocessors);
        return multiprocessors == EMULATED.multiprocessors
                ? EMULATED
                : new DeviceLimits(
                        EMULATED.maxThreadsPerBlock,
                        EMULATED.maxBlock,
                        EMULATED.maxGrid,
                        EMULATED.maxSharedMemoryPerBlock,
                        EMULATED.maxSharedMemoryPerBlockOptin,
                        EMULATED.warpSize,
                        multiprocessors);
    }
}
