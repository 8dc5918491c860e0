package dev.panamax.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Set;

/**
 * Kernels on a GPU through the driver API ({@link CudaDriver}): modules loaded in the device's primary context, the
 * one the runtime uses, so {@link DeviceBuffer} addresses are valid kernel arguments.
 */
final class DriverKernels {
    private DriverKernels() {}

    /** The current GPU's limits, from the driver's device attributes. */
    static DeviceLimits limits() {
        return limits(Cuda.currentDevice());
    }

    private static DeviceLimits limits(int device) {
        requireDriver();
        return new DeviceLimits(
                CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_THREADS_PER_BLOCK),
                new Dim3(
                        CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_BLOCK_DIM_X),
                        CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_BLOCK_DIM_Y),
                        CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_BLOCK_DIM_Z)),
                new Dim3(
                        CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_GRID_DIM_X),
                        CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_GRID_DIM_Y),
                        CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_GRID_DIM_Z)),
                CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK),
                CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
                CudaDriver.deviceAttribute(device, CudaDriver.ATTR_WARP_SIZE),
                CudaDriver.deviceAttribute(device, CudaDriver.ATTR_MULTIPROCESSOR_COUNT));
    }

    private static void requireDriver() {
        Cuda.requireAvailable();
        CudaDriver.unavailableReason().ifPresent(reason -> {
            throw new CudaUnavailableException(reason);
        });
    }

    /**
     * Loads PTX in the primary context of the calling thread's current device, after refusing PTX newer than the
     * driver loads with a {@link CudaUnavailableException} that names both versions.
     */
    static Module load(String name, String ptx) {
        requireDriver();
        CudaDriver.cudaVersion().ifPresent(version -> Ptx.requireLoadableBy(name, ptx, version));
        int device = Cuda.currentDevice();
        CudaDriver.makePrimaryContextCurrent(device);
        MemorySegment handle;
        try {
            handle = CudaDriver.loadModule(ptx);
        } catch (CudaException e) {
            throw unloadable(name, ptx, e);
        }
        return new Module(device, limits(device), handle, new SharedMemoryOptIn());
    }

    /** The statuses of a driver that cannot compile the PTX for its GPU, such as PTX for sm_80 on a Turing GPU. */
    private static final Set<String> NOT_FOR_THIS_GPU = Set.of(
            "CUDA_ERROR_NO_BINARY_FOR_GPU",
            "CUDA_ERROR_INVALID_PTX",
            "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
            "CUDA_ERROR_INVALID_IMAGE");

    /**
     * A failed module load as it should reach the caller: a GPU the PTX was not compiled for is a {@link
     * CudaUnavailableException}, the state a caller falls back to the CPU on, naming the PTX's target; any other
     * failure as it is.
     */
    static CudaException unloadable(String name, String ptx, CudaException e) {
        if (!NOT_FOR_THIS_GPU.contains(e.statusName())) {
            return e;
        }
        return new CudaUnavailableException(
                name + " is PTX for " + Ptx.target(ptx).orElse("another architecture")
                        + " and later GPUs, which the driver cannot compile for this one: " + e.getMessage());
    }

    /**
     * A loaded {@code CUmodule}.
     *
     * @param device the device it was loaded on
     * @param limits that device's limits
     * @param handle the module
     * @param sharedMemoryOptIn the dynamic shared memory each of its functions has been allowed
     */
    record Module(int device, DeviceLimits limits, MemorySegment handle, SharedMemoryOptIn sharedMemoryOptIn) {
        /**
         * The kernel's {@code CUfunction}, looked up in the module's context: the calling thread may have none current
         * (one that has made no CUDA call yet), or another device's.
         */
        MemorySegment function(String kernel) {
            CudaDriver.makePrimaryContextCurrent(device);
            return CudaDriver.function(handle, kernel);
        }

        /** The most threads per block the compiled function can run on this device. */
        int maxThreadsPerBlock(MemorySegment function) {
            CudaDriver.makePrimaryContextCurrent(device);
            return CudaDriver.functionAttribute(function, CudaDriver.FUNC_ATTR_MAX_THREADS_PER_BLOCK);
        }

        void unload() {
            CudaDriver.makePrimaryContextCurrent(device);
            CudaDriver.unloadModule(handle);
        }

        /**
         * Launches a checked launch: each argument copied into its own slot, and {@code kernelParams} pointing at the
         * slots, as {@code cuLaunchKernel} takes them. {@code optIn}: the launch needs more shared memory than a block
         * gets by default, which the function must be allowed first; the allowance is only ever raised, so concurrent
         * launches of one kernel with different sizes cannot lower it under each other.
         */
        void launch(
                MemorySegment function,
                String kernel,
                Dim3 grid,
                Dim3 block,
                int sharedBytes,
                boolean optIn,
                MemorySegment stream,
                Object[] arguments) {
            CudaDriver.makePrimaryContextCurrent(device);
            if (optIn) {
                sharedMemoryOptIn.require(
                        function.address(),
                        sharedBytes,
                        bytes -> CudaDriver.setFunctionAttribute(
                                function, CudaDriver.FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment pointers = arena.allocate(ADDRESS, Math.max(1, arguments.length));
                for (int i = 0; i < arguments.length; i++) {
                    MemorySegment slot = arena.allocate(Long.BYTES, Long.BYTES);
                    switch (arguments[i]) {
                        case DeviceBuffer buffer ->
                            slot.set(JAVA_LONG, 0, buffer.heldPointer(0).address());
                        case Integer value -> slot.set(JAVA_INT, 0, value);
                        case Long value -> slot.set(JAVA_LONG, 0, value);
                        case Float value -> slot.set(JAVA_FLOAT, 0, value);
                        default -> throw new IllegalArgumentException("unsupported argument " + arguments[i]);
                    }
                    pointers.setAtIndex(ADDRESS, i, slot);
                }
                CudaDriver.launch(
                        function,
                        kernel,
                        grid.x(),
                        grid.y(),
                        grid.z(),
                        block.x(),
                        block.y(),
                        block.z(),
                        sharedBytes,
                        stream,
                        pointers);
            }
        }
    }
}
