package dev.panamax.cuda;

import static dev.panamax.cuda.ffi.CudaFfi.C_INT;
import static dev.panamax.cuda.ffi.CudaFfi.C_POINTER;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.panamax.cuda.ffi.CudaFfi;
import dev.panamax.cuda.ffi.cudaDeviceProp;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Optional;
import java.util.function.ObjIntConsumer;
import java.util.function.ToIntFunction;

/**
 * The CUDA runtime: whether it can run here and why not, the devices and the versions.
 *
 * <p>libcudart is found as described in the module's README (the system property {@code panamax.cuda.cudart}, then
 * {@code CUDA_HOME}/{@code CUDA_PATH}, the loader path and the usual install locations; sonames 13, 12, 11). A machine
 * without the library, the driver or a device is a normal state: {@link #isAvailable()} is false and {@link
 * #unavailableReason()} says which, nothing crashes. Everything else in this package that needs the runtime throws
 * {@link CudaUnavailableException} with that reason when it is missing.
 */
public final class Cuda {
    /** Bytes allocated for {@code cudaDeviceProp}: more than any CUDA version's struct (13.0's is about 1 KiB). */
    private static final long DEVICE_PROP_BYTES = Math.max(4096, cudaDeviceProp.sizeof());

    /**
     * The system property that sizes the emulated device's memory, in bytes (read at each allocation, so a test may
     * make a small device); {@link DeviceBuffer#allocate} past it fails as {@code cudaMalloc} does on a full GPU.
     */
    public static final String EMULATED_MEMORY_PROPERTY = "panamax.cuda.emulator.memory";

    /** The emulated device's memory when {@link #EMULATED_MEMORY_PROPERTY} is not set: an 80 GiB H100's. */
    public static final long EMULATED_DEFAULT_MEMORY = 80L << 30;

    /**
     * The system property that sets the multiprocessor count the emulated device reports in its {@link DeviceLimits}
     * (read when a module is loaded or {@link DeviceLimits#current()} is called), so that code which sizes its grids
     * from it can be tested for GPUs of other sizes; the emulator still runs one block at a time.
     */
    public static final String EMULATED_MULTIPROCESSORS_PROPERTY = "panamax.cuda.emulator.multiprocessors";

    private Cuda() {}

    /** The availability, determined once. */
    private static final class State {
        static final String REASON = probe();

        private State() {}
    }

    private static String probe() {
        Libraries.Found runtime = Libraries.Cudart.FOUND;
        if (runtime.path().isEmpty()) {
            return runtime.reason();
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(C_INT);
            int status = CudaFfi.cudaGetDeviceCount(count);
            if (status == CudaFfi.cudaErrorNoDevice()
                    || (status == CudaFfi.cudaSuccess() && count.get(C_INT, 0) == 0)) {
                return "no CUDA device";
            }
            if (status != CudaFfi.cudaSuccess()) {
                CudaException error = exception(status, "cudaGetDeviceCount");
                return driverVersion().isEmpty() ? "no CUDA driver: " + error.getMessage() : error.getMessage();
            }
            return "";
        }
    }

    /**
     * Whether CUDA can run here: libcudart loads, a driver answers and there is at least one device.
     *
     * @return true when devices can be used
     */
    public static boolean isAvailable() {
        return State.REASON.isEmpty();
    }

    /**
     * Why CUDA cannot run here, e.g. {@code no CUDA device}, {@code no CUDA driver: cudaGetDeviceCount failed: …} or
     * {@code libcudart not found, looked for … in: …}.
     *
     * @return the reason, or empty when {@link #isAvailable()}
     */
    public static Optional<String> unavailableReason() {
        return isAvailable() ? Optional.empty() : Optional.of(State.REASON);
    }

    /**
     * The libcudart file loaded.
     *
     * @return its path, or empty when none was found
     */
    public static Optional<Path> runtimeLibrary() {
        return Libraries.Cudart.FOUND.path();
    }

    /**
     * The version of the loaded libcudart ({@code cudaRuntimeGetVersion}).
     *
     * @return e.g. 13.0.0, or empty when libcudart was not found
     */
    public static Optional<Version> runtimeVersion() {
        return runtimeLibrary()
                .map(path -> Version.ofCuda(queryInt(CudaFfi::cudaRuntimeGetVersion, "cudaRuntimeGetVersion")));
    }

    /**
     * The newest CUDA version the installed driver supports ({@code cudaDriverGetVersion}).
     *
     * @return e.g. 13.0.0, or empty when libcudart was not found or no driver is installed
     */
    public static Optional<Version> driverVersion() {
        return runtimeLibrary()
                .map(path -> queryInt(CudaFfi::cudaDriverGetVersion, "cudaDriverGetVersion"))
                .filter(version -> version > 0)
                .map(Version::ofCuda);
    }

    /**
     * The number of devices.
     *
     * @return the device count; 0 when CUDA is not available (see {@link #unavailableReason()})
     */
    public static int deviceCount() {
        return isAvailable() ? queryInt(CudaFfi::cudaGetDeviceCount, "cudaGetDeviceCount") : 0;
    }

    /**
     * What the runtime reports about one device.
     *
     * @param ordinal the device, from 0 to {@link #deviceCount()} − 1
     * @return its properties
     * @throws CudaUnavailableException when CUDA is not available
     * @throws IndexOutOfBoundsException when there is no such device
     */
    public static DeviceProperties device(int ordinal) {
        requireDevice(ordinal);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment prop = arena.allocate(DEVICE_PROP_BYTES, 8);
            check("cudaGetDeviceProperties", CudaFfi.cudaGetDeviceProperties(prop, ordinal));
            return new DeviceProperties(
                    ordinal,
                    cudaDeviceProp.name(prop).getString(0),
                    cudaDeviceProp.totalGlobalMem(prop),
                    attribute(arena, CudaFfi.cudaDevAttrComputeCapabilityMajor(), ordinal),
                    attribute(arena, CudaFfi.cudaDevAttrComputeCapabilityMinor(), ordinal),
                    attribute(arena, CudaFfi.cudaDevAttrMultiProcessorCount(), ordinal),
                    attribute(arena, CudaFfi.cudaDevAttrL2CacheSize(), ordinal));
        }
    }

    /**
     * The free and total memory of the calling thread's current device ({@code cudaMemGetInfo}). On the emulated
     * device the total is {@link #EMULATED_MEMORY_PROPERTY} (default {@link #EMULATED_DEFAULT_MEMORY}) and the free
     * bytes are the total less what its live buffers hold, in every thread.
     *
     * @return the device's memory
     * @throws CudaUnavailableException when CUDA is not available (and the emulated device is not current)
     */
    public static DeviceMemory memory() {
        if (EmulatedDevice.isSelected()) {
            return EmulatedDevice.memory();
        }
        requireAvailable();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(JAVA_LONG);
            MemorySegment total = arena.allocate(JAVA_LONG);
            check("cudaMemGetInfo", CudaFfi.cudaMemGetInfo(free, total));
            return new DeviceMemory(free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0));
        }
    }

    /**
     * Makes a device the calling thread's current one: later allocations, streams and handles of this thread use it.
     *
     * @param ordinal the device, from 0 to {@link #deviceCount()} − 1
     * @throws CudaUnavailableException when CUDA is not available
     * @throws IndexOutOfBoundsException when there is no such device
     */
    public static void setDevice(int ordinal) {
        requireDevice(ordinal);
        check("cudaSetDevice", CudaFfi.cudaSetDevice(ordinal));
        EmulatedDevice.deselect();
    }

    /**
     * Makes the emulated device the calling thread's current device, running blocks and threads in index order: the
     * {@link DeviceBuffer}s, {@link CudaStream}s, {@link CudaEvent}s, {@link PinnedBuffer}s and {@link CudaModule}s
     * this thread creates from now on belong to it, until {@link #setDevice(int)} chooses a GPU. The system property
     * {@code panamax.cuda.device=emulated} makes it every thread's initial device (with the schedule seed {@code
     * panamax.cuda.emulator.seed}, default 0). See the module's README, "Kernels and the emulated device".
     *
     * @throws CudaUnavailableException when the emulated device cannot run here (see {@link
     *     #emulatedDeviceUnavailableReason()})
     */
    public static void useEmulatedDevice() {
        useEmulatedDevice(0);
    }

    /**
     * Makes the emulated device the calling thread's current device, running the blocks of each launch, and the
     * threads of each block between barriers, in an order drawn from {@code scheduleSeed}: a kernel's results must
     * not depend on it, which tests check by launching with several seeds.
     *
     * @param scheduleSeed 0 for index order, anything else for a shuffled order that this seed reproduces
     * @throws CudaUnavailableException when the emulated device cannot run here
     */
    public static void useEmulatedDevice(long scheduleSeed) {
        EmulatedDevice.select(scheduleSeed);
    }

    /**
     * Whether the calling thread's current device is the emulated one.
     *
     * @return true after {@link #useEmulatedDevice()} (or with {@code panamax.cuda.device=emulated}) until {@link
     *     #setDevice(int)}
     */
    public static boolean isEmulatedDeviceCurrent() {
        return EmulatedDevice.isSelected();
    }

    /**
     * Why the emulated device cannot run here, e.g. its kernel library was not built for want of a C++ compiler.
     *
     * @return the reason, or empty when it can run
     */
    public static Optional<String> emulatedDeviceUnavailableReason() {
        return EmulatedDevice.unavailableReason();
    }

    /**
     * The calling thread's current device.
     *
     * @return its ordinal
     * @throws CudaUnavailableException when CUDA is not available
     */
    public static int currentDevice() {
        requireAvailable();
        return queryInt(CudaFfi::cudaGetDevice, "cudaGetDevice");
    }

    /**
     * Waits until the current device has finished all work queued on it ({@code cudaDeviceSynchronize}); returns at
     * once on the emulated device, whose work is done when queued.
     *
     * @throws CudaUnavailableException when CUDA is not available
     */
    public static void synchronize() {
        if (EmulatedDevice.isSelected()) {
            return;
        }
        requireAvailable();
        check("cudaDeviceSynchronize", CudaFfi.cudaDeviceSynchronize());
    }

    /** Throws {@link CudaUnavailableException} with the reason when CUDA is not available. */
    static void requireAvailable() {
        if (!isAvailable()) {
            throw new CudaUnavailableException(State.REASON);
        }
    }

    private static void requireDevice(int ordinal) {
        requireAvailable();
        Arguments.within("this machine's device list", deviceCount(), "ordinal", ordinal, 1);
    }

    private static int attribute(Arena arena, int attribute, int ordinal) {
        MemorySegment value = arena.allocate(C_INT);
        check("cudaDeviceGetAttribute", CudaFfi.cudaDeviceGetAttribute(value, attribute, ordinal));
        return value.get(C_INT, 0);
    }

    /** Calls a runtime function that writes one int through a pointer, and returns the int. */
    private static int queryInt(ToIntFunction<MemorySegment> function, String call) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(C_INT);
            check(call, function.applyAsInt(value));
            return value.get(C_INT, 0);
        }
    }

    /**
     * Calls a runtime function that creates an object and writes its handle through a pointer, and returns the handle.
     */
    static MemorySegment create(ToIntFunction<MemorySegment> function, String call) {
        return create(function, call, Cuda::check);
    }

    /**
     * Calls a function that creates an object and writes its handle through a pointer, checks its status with {@code
     * check} and returns the handle.
     */
    static MemorySegment create(ToIntFunction<MemorySegment> function, String call, ObjIntConsumer<String> check) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handle = arena.allocate(C_POINTER);
            check.accept(call, function.applyAsInt(handle));
            return MemorySegment.ofAddress(handle.get(C_POINTER, 0).address());
        }
    }

    /** Throws {@link CudaException} unless {@code status} is {@code cudaSuccess}. */
    static void check(String call, int status) {
        if (status != CudaFfi.cudaSuccess()) {
            throw exception(status, call);
        }
    }

    /**
     * Whether an asynchronous operation has completed, from a query's status: {@code cudaSuccess} is done, {@code
     * cudaErrorNotReady} is not yet, anything else throws.
     */
    static boolean done(String call, int status) {
        if (status == CudaFfi.cudaErrorNotReady()) {
            return false;
        }
        check(call, status);
        return true;
    }

    private static CudaException exception(int status, String call) {
        return CudaException.fromDevice(
                call,
                null,
                status,
                CudaFfi.cudaGetErrorName(status).getString(0),
                CudaFfi.cudaGetErrorString(status).getString(0));
    }
}
