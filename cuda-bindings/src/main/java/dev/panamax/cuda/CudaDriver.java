package dev.panamax.cuda;

import static dev.panamax.cuda.ffi.CudaDriverFfi.C_INT;
import static dev.panamax.cuda.ffi.CudaDriverFfi.C_POINTER;

import dev.panamax.cuda.ffi.CudaDriverFfi;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.ToIntFunction;

/**
 * The CUDA driver API calls a kernel launcher needs, over the generated {@code CudaDriverFfi}: device attributes, the
 * primary context, PTX modules, their functions and {@code cuLaunchKernel}.
 *
 * <p>libcuda comes with the NVIDIA driver, not the toolkit, and is found as the module's README says (the system
 * property {@code panamax.cuda.cuda}, then the loader path and the system folders; {@code libcuda.so.1}, then {@code
 * libcuda.so}; never a toolkit's {@code stubs} folder). Where it is missing or {@code cuInit(0)} fails, {@link
 * #unavailableReason()} says why and every other method throws {@link CudaUnavailableException} with that reason.
 * Every failing driver status becomes a {@link CudaException} naming the call, the status ({@code cuGetErrorName}
 * and {@code cuGetErrorString}) and, where there is one, the kernel. Module, function and launch calls need a current
 * context on the calling thread: {@link #makePrimaryContextCurrent(int)}.
 */
final class CudaDriver {
    /** {@code CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK}: the most threads in one block. */
    static final int ATTR_MAX_THREADS_PER_BLOCK = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK();

    /** {@code CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X}: the largest block x dimension. */
    static final int ATTR_MAX_BLOCK_DIM_X = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X();

    /** {@code CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y}: the largest block y dimension. */
    static final int ATTR_MAX_BLOCK_DIM_Y = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y();

    /** {@code CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z}: the largest block z dimension. */
    static final int ATTR_MAX_BLOCK_DIM_Z = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z();

    /** {@code CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X}: the largest grid x dimension. */
    static final int ATTR_MAX_GRID_DIM_X = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X();

    /** {@code CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y}: the largest grid y dimension. */
    static final int ATTR_MAX_GRID_DIM_Y = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y();

    /** {@code CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z}: the largest grid z dimension. */
    static final int ATTR_MAX_GRID_DIM_Z = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z();

    /** {@code CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK}: shared memory bytes a block gets without opting in. */
    static final int ATTR_MAX_SHARED_MEMORY_PER_BLOCK = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK();

    /**
     * {@code CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN}: shared memory bytes a block may get once its
     * function's {@link #FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES} is raised.
     */
    static final int ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN =
            CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN();

    /** {@code CU_DEVICE_ATTRIBUTE_WARP_SIZE}: threads in a warp. */
    static final int ATTR_WARP_SIZE = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_WARP_SIZE();

    /** {@code CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT}: streaming multiprocessors on the device. */
    static final int ATTR_MULTIPROCESSOR_COUNT = CudaDriverFfi.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT();

    /**
     * {@code CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES}: the most dynamic shared memory a launch of the function
     * may ask for; settable up to the opt-in limit less the function's static shared memory.
     */
    static final int FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES =
            CudaDriverFfi.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES();

    /** {@code CU_FUNC_ATTRIBUTE_NUM_REGS}: registers each thread of the function uses. */
    static final int FUNC_ATTR_NUM_REGS = CudaDriverFfi.CU_FUNC_ATTRIBUTE_NUM_REGS();

    /** {@code CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK}: the most threads a block of the function may have. */
    static final int FUNC_ATTR_MAX_THREADS_PER_BLOCK = CudaDriverFfi.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK();

    /** Bytes of the JIT error log kept when a module fails to load. */
    private static final int JIT_LOG_BYTES = 16 * 1024;

    /** The primary context of each device ordinal, retained once and kept for the process's lifetime. */
    private static final Map<Integer, MemorySegment> PRIMARY_CONTEXTS = new ConcurrentHashMap<>();

    private CudaDriver() {}

    /** The availability, determined once; never throws, so that the class always initializes. */
    private static final class State {
        static final String REASON = probe();

        private State() {}
    }

    private static String probe() {
        Libraries.Found driver = Libraries.Driver.FOUND;
        if (driver.path().isEmpty()) {
            return "no CUDA driver: " + driver.reason();
        }
        int status = CudaDriverFfi.cuInit(0);
        if (status != CudaDriverFfi.CUDA_SUCCESS()) {
            return exception("cuInit", null, status).getMessage() + " (libcuda "
                    + driver.path().map(Path::toString).orElseThrow() + driverVersion() + ")";
        }
        return "";
    }

    /** The CUDA version the driver supports ({@code cuDriverGetVersion}, which needs no {@code cuInit}), for messages. */
    private static String driverVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(C_INT);
            return CudaDriverFfi.cuDriverGetVersion(version) == CudaDriverFfi.CUDA_SUCCESS()
                    ? ", driver for CUDA " + Version.ofCuda(version.get(C_INT, 0))
                    : "";
        }
    }

    /**
     * The CUDA version the driver supports ({@code cuDriverGetVersion}), e.g. 12080 for CUDA 12.8.
     *
     * @return {@code 1000·major + 10·minor}, or empty when libcuda is missing or the call fails
     */
    static OptionalInt cudaVersion() {
        if (Libraries.Driver.FOUND.path().isEmpty()) {
            return OptionalInt.empty();
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(C_INT);
            return CudaDriverFfi.cuDriverGetVersion(version) == CudaDriverFfi.CUDA_SUCCESS()
                    ? OptionalInt.of(version.get(C_INT, 0))
                    : OptionalInt.empty();
        }
    }

    /**
     * Why the driver API cannot be used here.
     *
     * @return empty when libcuda loaded and {@code cuInit(0)} succeeded; else the reason, e.g. {@code no CUDA driver:
     *     libcuda not found, looked for libcuda.so.1 libcuda.so in: …} or {@code cuInit failed: CUDA_ERROR_NO_DEVICE
     *     (100): no CUDA-capable device is detected (libcuda /usr/lib/x86_64-linux-gnu/libcuda.so.1, driver for CUDA
     *     13.0.0)}
     */
    static Optional<String> unavailableReason() {
        return State.REASON.isEmpty() ? Optional.empty() : Optional.of(State.REASON);
    }

    /** Throws {@link CudaUnavailableException} with the reason when the driver API cannot be used. */
    private static void requireAvailable() {
        if (!State.REASON.isEmpty()) {
            throw new CudaUnavailableException(State.REASON);
        }
    }

    /**
     * One attribute of a device ({@code cuDeviceGetAttribute}).
     *
     * @param device the device ordinal
     * @param attribute one of the {@code ATTR_} constants (a {@code CU_DEVICE_ATTRIBUTE_} value)
     * @return its value
     * @throws CudaUnavailableException when the driver API cannot be used here
     * @throws CudaException when the driver rejects the device or attribute
     */
    static int deviceAttribute(int device, int attribute) {
        int handle = deviceHandle(device);
        return queryInt(value -> CudaDriverFfi.cuDeviceGetAttribute(value, attribute, handle), "cuDeviceGetAttribute");
    }

    /**
     * Makes a device's primary context current on the calling thread ({@code cuDevicePrimaryCtxRetain}, then {@code
     * cuCtxSetCurrent}). The primary context is the one the runtime API uses for that device, so {@link DeviceBuffer}
     * pointers, streams and events of the runtime are valid in driver calls made after this. Each device's primary
     * context is retained once, on first use, and kept until the process exits, as the runtime keeps it.
     *
     * @param device the device ordinal
     * @throws CudaUnavailableException when the driver API cannot be used here
     * @throws CudaException when the driver fails, e.g. {@code CUDA_ERROR_INVALID_DEVICE}
     */
    static void makePrimaryContextCurrent(int device) {
        MemorySegment context = PRIMARY_CONTEXTS.computeIfAbsent(device, CudaDriver::retainPrimaryContext);
        check("cuCtxSetCurrent", null, CudaDriverFfi.cuCtxSetCurrent(context));
    }

    private static MemorySegment retainPrimaryContext(int device) {
        int handle = deviceHandle(device);
        return Cuda.create(
                context -> CudaDriverFfi.cuDevicePrimaryCtxRetain(context, handle),
                "cuDevicePrimaryCtxRetain",
                (call, status) -> check(call, null, status));
    }

    /**
     * Loads a module from PTX text ({@code cuModuleLoadDataEx}, which JIT-compiles it for the current context's
     * device). When compilation fails, the exception's message ends with the JIT's error log.
     *
     * @param ptx the PTX text
     * @return the {@code CUmodule}; unload it with {@link #unloadModule(MemorySegment)}
     * @throws IllegalArgumentException when the text contains a NUL character, which would cut it short
     * @throws CudaUnavailableException when the driver API cannot be used here
     * @throws CudaException when the driver fails, e.g. {@code CUDA_ERROR_INVALID_PTX} with the JIT's log
     */
    static MemorySegment loadModule(String ptx) {
        Objects.requireNonNull(ptx, "ptx");
        int nul = ptx.indexOf('\0');
        if (nul >= 0) {
            throw new IllegalArgumentException("ptx contains a NUL character at index " + nul);
        }
        requireAvailable();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment image = arena.allocateFrom(ptx);
            MemorySegment log = arena.allocate(JIT_LOG_BYTES);
            MemorySegment options = arena.allocateFrom(
                    C_INT, CudaDriverFfi.CU_JIT_ERROR_LOG_BUFFER(), CudaDriverFfi.CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES());
            // Each option's value is passed in a pointer-sized slot; the log size is an integer stored as a pointer.
            MemorySegment values = arena.allocate(C_POINTER, 2);
            values.setAtIndex(C_POINTER, 0, log);
            values.setAtIndex(C_POINTER, 1, MemorySegment.ofAddress(JIT_LOG_BYTES));
            MemorySegment module = arena.allocate(C_POINTER);
            int status = CudaDriverFfi.cuModuleLoadDataEx(module, image, 2, options, values);
            if (status != CudaDriverFfi.CUDA_SUCCESS()) {
                String jitLog = log.getString(0).strip();
                throw exception("cuModuleLoadDataEx", null, status, jitLog.isEmpty() ? "" : "; JIT log: " + jitLog);
            }
            return MemorySegment.ofAddress(module.get(C_POINTER, 0).address());
        }
    }

    /**
     * Unloads a module ({@code cuModuleUnload}); its functions are invalid afterwards.
     *
     * @param module a {@code CUmodule} from {@link #loadModule(String)}
     * @throws CudaUnavailableException when the driver API cannot be used here
     * @throws CudaException when the driver fails
     */
    static void unloadModule(MemorySegment module) {
        Objects.requireNonNull(module, "module");
        requireAvailable();
        check("cuModuleUnload", null, CudaDriverFfi.cuModuleUnload(module));
    }

    /**
     * A kernel of a module ({@code cuModuleGetFunction}).
     *
     * @param module a {@code CUmodule} from {@link #loadModule(String)}
     * @param kernelName the kernel's name in the PTX (its {@code .entry}, unmangled for {@code extern "C"} kernels)
     * @return the {@code CUfunction}, valid until the module is unloaded
     * @throws CudaUnavailableException when the driver API cannot be used here
     * @throws CudaException naming the kernel when the driver fails, e.g. {@code CUDA_ERROR_NOT_FOUND} for a name the
     *     module does not have
     */
    static MemorySegment function(MemorySegment module, String kernelName) {
        Objects.requireNonNull(module, "module");
        Objects.requireNonNull(kernelName, "kernelName");
        requireAvailable();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocateFrom(kernelName);
            return Cuda.create(
                    function -> CudaDriverFfi.cuModuleGetFunction(function, module, name),
                    "cuModuleGetFunction",
                    (call, status) -> check(call, kernelName, status));
        }
    }

    /**
     * One attribute of a kernel ({@code cuFuncGetAttribute}).
     *
     * @param function a {@code CUfunction} from {@link #function(MemorySegment, String)}
     * @param attribute one of the {@code FUNC_ATTR_} constants (a {@code CU_FUNC_ATTRIBUTE_} value)
     * @return its value
     * @throws CudaUnavailableException when the driver API cannot be used here
     * @throws CudaException when the driver fails
     */
    static int functionAttribute(MemorySegment function, int attribute) {
        Objects.requireNonNull(function, "function");
        requireAvailable();
        return queryInt(value -> CudaDriverFfi.cuFuncGetAttribute(value, attribute, function), "cuFuncGetAttribute");
    }

    /**
     * Sets one attribute of a kernel ({@code cuFuncSetAttribute}), e.g. raises {@link
     * #FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES} before a launch that needs more dynamic shared memory than the default
     * limit.
     *
     * @param function a {@code CUfunction} from {@link #function(MemorySegment, String)}
     * @param attribute one of the settable {@code FUNC_ATTR_} constants
     * @param value the new value
     * @throws CudaUnavailableException when the driver API cannot be used here
     * @throws CudaException when the driver rejects it, e.g. {@code CUDA_ERROR_INVALID_VALUE} past the device's limit
     */
    static void setFunctionAttribute(MemorySegment function, int attribute, int value) {
        Objects.requireNonNull(function, "function");
        requireAvailable();
        check("cuFuncSetAttribute", null, CudaDriverFfi.cuFuncSetAttribute(function, attribute, value));
    }

    /**
     * Queues a kernel launch ({@code cuLaunchKernel}). The launch is asynchronous: errors of the kernel's execution
     * surface at a later synchronization, only launch errors here.
     *
     * @param function a {@code CUfunction} from {@link #function(MemorySegment, String)}
     * @param kernelName the kernel's name, for messages
     * @param gridX blocks in x
     * @param gridY blocks in y
     * @param gridZ blocks in z
     * @param blockX threads per block in x
     * @param blockY threads per block in y
     * @param blockZ threads per block in z
     * @param sharedMemoryBytes dynamic shared memory per block, in bytes
     * @param stream a {@code cudaStream_t}/{@code CUstream}, or {@link MemorySegment#NULL} (or null) for the legacy
     *     default stream
     * @param kernelParams a {@code void*[]} with one pointer to each argument's value, in the kernel's parameter order
     *     ({@link MemorySegment#NULL} for a kernel without parameters)
     * @throws CudaUnavailableException when the driver API cannot be used here
     * @throws CudaException naming the kernel when the driver rejects the launch
     */
    static void launch(
            MemorySegment function,
            String kernelName,
            int gridX,
            int gridY,
            int gridZ,
            int blockX,
            int blockY,
            int blockZ,
            int sharedMemoryBytes,
            MemorySegment stream,
            MemorySegment kernelParams) {
        Objects.requireNonNull(function, "function");
        Objects.requireNonNull(kernelName, "kernelName");
        Objects.requireNonNull(kernelParams, "kernelParams");
        requireAvailable();
        check(
                "cuLaunchKernel",
                kernelName,
                CudaDriverFfi.cuLaunchKernel(
                        function,
                        gridX,
                        gridY,
                        gridZ,
                        blockX,
                        blockY,
                        blockZ,
                        sharedMemoryBytes,
                        stream == null ? MemorySegment.NULL : stream,
                        kernelParams,
                        MemorySegment.NULL));
    }

    /** The {@code CUdevice} of a device ordinal ({@code cuDeviceGet}). */
    private static int deviceHandle(int device) {
        requireAvailable();
        return queryInt(handle -> CudaDriverFfi.cuDeviceGet(handle, device), "cuDeviceGet");
    }

    /** Calls a driver function that writes one int through a pointer, and returns the int. */
    private static int queryInt(ToIntFunction<MemorySegment> function, String call) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(C_INT);
            check(call, null, function.applyAsInt(value));
            return value.get(C_INT, 0);
        }
    }

    /** Throws {@link CudaException} unless {@code status} is {@code CUDA_SUCCESS}. */
    private static void check(String call, String kernel, int status) {
        if (status != CudaDriverFfi.CUDA_SUCCESS()) {
            throw exception(call, kernel, status);
        }
    }

    private static CudaException exception(String call, String kernel, int status) {
        return exception(call, kernel, status, "");
    }

    /**
     * The exception for a failed call, with the status's name and description from the driver ({@code
     * cuGetErrorName}, {@code cuGetErrorString}; a status the driver does not know is named by its number only).
     */
    private static CudaException exception(String call, String kernel, int status, String detail) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment text = arena.allocate(C_POINTER);
            String name = CudaDriverFfi.cuGetErrorName(status, text) == CudaDriverFfi.CUDA_SUCCESS()
                    ? text.get(C_POINTER, 0).getString(0)
                    : "unknown CUresult";
            String description = CudaDriverFfi.cuGetErrorString(status, text) == CudaDriverFfi.CUDA_SUCCESS()
                    ? text.get(C_POINTER, 0).getString(0)
                    : "";
            return CudaException.fromDevice(call, kernel, status, name, description + detail);
        }
    }
}
