package dev.panamax.cuda;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * One kernel of a {@link CudaModule}, launched with {@link #launch}. Every launch is checked in Java before a driver
 * or the emulator sees it: the grid and block against the device's {@link DeviceLimits}, the dynamic shared memory
 * plus the kernel's static shared memory against the device's maximum, and the arguments against the kernel's
 * parameters, in number and type. Safe to launch from several threads.
 */
public final class CudaKernel {
    private final CudaModule module;
    private final String name;
    private final List<Parameter> parameters;
    private final long staticSharedBytes;
    private final int maxThreadsPerBlock;
    private final EmulatedDevice.Kernel emulated;
    private final MemorySegment function;

    /**
     * A parameter as launches see it: its spelling in messages, the Java types an argument may have, and for a
     * pointer on the emulated device the element type its buffer must hold.
     */
    private record Parameter(String spelled, List<Class<?>> accepted, ElementType element) {}

    private CudaKernel(
            CudaModule module,
            Ptx.Entry entry,
            List<Parameter> parameters,
            int maxThreadsPerBlock,
            EmulatedDevice.Kernel emulated,
            MemorySegment function) {
        this.module = module;
        this.name = entry.name();
        this.parameters = List.copyOf(parameters);
        this.staticSharedBytes = entry.staticSharedBytes();
        this.maxThreadsPerBlock = maxThreadsPerBlock;
        this.emulated = emulated;
        this.function = function;
    }

    /**
     * A kernel on a GPU: parameters as the PTX types them (a 64-bit one is a buffer or a long), and at most the
     * threads per block the compiled function can run ({@code maxThreadsPerBlock}: fewer than the device's when it
     * needs many registers).
     */
    static CudaKernel onGpu(CudaModule module, Ptx.Entry entry, MemorySegment function, int maxThreadsPerBlock) {
        List<Parameter> parameters = new ArrayList<>();
        for (String type : entry.parameters()) {
            parameters.add(
                    switch (type) {
                        case "u32", "s32", "b32" -> new Parameter("." + type + " (int)", List.of(Integer.class), null);
                        case "u64", "s64", "b64" ->
                            new Parameter(
                                    "." + type + " (a pointer or a long)",
                                    List.of(DeviceBuffer.class, Long.class),
                                    null);
                        case "f32" -> new Parameter(".f32 (float)", List.of(Float.class), null);
                        default -> new Parameter("." + type, List.of(), null);
                    });
        }
        return new CudaKernel(module, entry, parameters, maxThreadsPerBlock, null, function);
    }

    /**
     * A kernel on the emulated device: parameters as the emulator's C++ types them, which must agree with the PTX
     * compiled from the same source.
     */
    static CudaKernel emulated(CudaModule module, Ptx.Entry entry, EmulatedDevice.Kernel kernel) {
        List<String> ptx = entry.parameters();
        List<String> cpp = kernel.signature();
        List<Parameter> parameters = new ArrayList<>();
        boolean agree = ptx.size() == cpp.size();
        for (int i = 0; i < cpp.size(); i++) {
            Parameter parameter = cppParameter(cpp.get(i));
            parameters.add(parameter);
            agree &= i < ptx.size() && ptxClass(ptx.get(i)).equals(ptxClass(parameter));
        }
        if (!agree) {
            throw new IllegalStateException("kernel " + entry.name() + ": the PTX declares parameters " + ptx
                    + ", the emulated device's library " + cpp + ": one of them was built from another version of "
                    + "the source (regenerate the PTX with cuda/regenerate-ptx.sh, or rebuild)");
        }
        return new CudaKernel(module, entry, parameters, module.limits().maxThreadsPerBlock(), kernel, null);
    }

    private static Parameter cppParameter(String type) {
        if (type.endsWith("*")) {
            String element = type.substring(0, type.length() - 1).replaceFirst("^const ", "");
            ElementType elementType =
                    switch (element) {
                        case "float" -> ElementType.FLOAT;
                        case "__half" -> ElementType.HALF;
                        case "__nv_bfloat16" -> ElementType.BFLOAT16;
                        default -> null;
                    };
            return new Parameter(type, elementType == null ? List.of() : List.of(DeviceBuffer.class), elementType);
        }
        return switch (type) {
            case "int", "unsigned int" -> new Parameter(type, List.of(Integer.class), null);
            case "long long", "unsigned long long" -> new Parameter(type, List.of(Long.class), null);
            case "float" -> new Parameter(type, List.of(Float.class), null);
            default -> new Parameter(type, List.of(), null);
        };
    }

    /** The PTX register class a parameter travels in: 32- or 64-bit integer, or float. */
    private static String ptxClass(String ptxType) {
        return switch (ptxType) {
            case "u32", "s32", "b32" -> "int32";
            case "u64", "s64", "b64" -> "int64";
            case "f32" -> "f32";
            default -> ptxType;
        };
    }

    private static String ptxClass(Parameter parameter) {
        if (parameter.accepted().contains(Integer.class)) {
            return "int32";
        }
        if (parameter.accepted().contains(Float.class)) {
            return "f32";
        }
        return parameter.accepted().isEmpty() ? parameter.spelled() : "int64";
    }

    /**
     * The kernel's name.
     *
     * @return the name its module declares
     */
    public String name() {
        return name;
    }

    /**
     * The kernel's parameters as launches check them: C++ types on the emulated device (e.g. {@code const float*},
     * {@code int}), PTX types on a GPU (e.g. {@code .u64 (a pointer or a long)}).
     *
     * @return one description per parameter, in order
     */
    public List<String> parameters() {
        return parameters.stream().map(Parameter::spelled).toList();
    }

    /**
     * The most threads per block this kernel can be launched with: the device's limit, or on a GPU fewer when the
     * compiled kernel needs many registers ({@code CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK}).
     *
     * @return threads per block
     */
    public int maxThreadsPerBlock() {
        return maxThreadsPerBlock;
    }

    /**
     * The shared memory the kernel declares statically ({@code __shared__} arrays), as read from its PTX.
     *
     * @return bytes per block
     */
    public long staticSharedMemoryBytes() {
        return staticSharedBytes;
    }

    /**
     * Launches the kernel: {@code grid} blocks of {@code block} threads each, with {@code sharedMemoryBytes} of dynamic
     * shared memory ({@code extern __shared__}) per block, queued on {@code stream} (null: the default stream). Any
     * thread may launch, whatever its current device. On the emulated device the launch runs before this method
     * returns, in the schedule of the calling thread's seed ({@link Cuda#useEmulatedDevice(long)}), or of the seed the
     * module was loaded with when the calling thread has not selected the emulated device.
     *
     * @param grid the number of blocks in each dimension, each at least 1
     * @param block the number of threads per block in each dimension, each at least 1
     * @param sharedMemoryBytes dynamic shared memory per block, at least 0
     * @param stream the stream, of the module's device; null for the default stream
     * @param arguments one per parameter: a {@link DeviceBuffer} (passed as the address of its element 0) for a
     *     pointer, an {@link Integer} for an {@code int}, a {@link Long} for a {@code long long}, a {@link Float} for
     *     a {@code float}
     * @throws IllegalArgumentException when the dimensions, the shared memory or the arguments break the kernel's
     *     parameters or the device's limits, or when the stream or a buffer was created on another device than the
     *     module's; the message names which and the bound (or both devices)
     * @throws IllegalStateException when the module, the stream or a buffer is closed
     * @throws KernelFaultException on the emulated device, when the kernel faults (an out-of-bounds access, a barrier
     *     or warp operation not every thread reaches, a trap)
     * @throws CudaException when the driver fails the launch
     */
    public void launch(Dim3 grid, Dim3 block, int sharedMemoryBytes, CudaStream stream, Object... arguments) {
        // The module, the stream and the buffers are held until the launch is queued (on the emulated device, until
        // it has run), so that a close on another thread waits for it instead of freeing them under the driver.
        DriverKernels.Module gpu = module.acquire();
        try {
            check(grid, block, sharedMemoryBytes, stream, arguments);
            try (Ownership.Held _ = Ownership.hold(held(stream, arguments))) {
                launchHeld(gpu, grid, block, sharedMemoryBytes, stream, arguments);
            }
        } finally {
            module.release();
        }
    }

    private void check(Dim3 grid, Dim3 block, int sharedMemoryBytes, CudaStream stream, Object[] arguments) {
        DeviceLimits limits = module.limits();
        within("grid", Arguments.present("grid", grid), limits.maxGrid());
        within("block", Arguments.present("block", block), limits.maxBlock());
        if (block.volume() > maxThreadsPerBlock) {
            throw new IllegalArgumentException("block " + block + " has " + block.volume() + " threads, more than the "
                    + maxThreadsPerBlock + " per block " + name + " can run on this device");
        }
        Arguments.atLeastZero("sharedMemoryBytes", sharedMemoryBytes);
        if (sharedMemoryBytes + staticSharedBytes > limits.maxSharedMemoryPerBlockOptin()) {
            throw new IllegalArgumentException("sharedMemoryBytes (" + sharedMemoryBytes + ") plus " + name + "'s "
                    + staticSharedBytes + " bytes of static shared memory exceed the device's "
                    + limits.maxSharedMemoryPerBlockOptin() + " bytes of shared memory per block");
        }
        if (stream != null) {
            // cuLaunchKernel fails for a stream of another device than the module's context.
            Device.requireSame("stream", stream, stream.device(), user(), module.device());
        }
        checkArguments(Arguments.present("arguments", arguments));
    }

    /** What a launch holds besides its module: the stream, if any, and every buffer argument. */
    private static Ownership[] held(CudaStream stream, Object[] arguments) {
        Ownership[] owners = new Ownership[arguments.length + 1];
        owners[0] = stream == null ? null : stream.ownership();
        for (int i = 0; i < arguments.length; i++) {
            owners[i + 1] = arguments[i] instanceof DeviceBuffer buffer ? buffer.ownership() : null;
        }
        return owners;
    }

    /** The launch itself, once the module, the stream and the buffer arguments are held. */
    private void launchHeld(
            DriverKernels.Module gpu,
            Dim3 grid,
            Dim3 block,
            int sharedMemoryBytes,
            CudaStream stream,
            Object[] arguments) {
        if (gpu == null) {
            EmulatedDevice.launch(emulated, grid, block, sharedMemoryBytes, module.scheduleSeed(), arguments);
        } else {
            gpu.launch(
                    function,
                    name,
                    grid,
                    block,
                    sharedMemoryBytes,
                    sharedMemoryBytes + staticSharedBytes > module.limits().maxSharedMemoryPerBlock(),
                    stream == null ? MemorySegment.NULL : stream.heldHandle(),
                    arguments);
        }
    }

    private void checkArguments(Object[] arguments) {
        if (arguments.length != parameters.size()) {
            throw new IllegalArgumentException(
                    name + " takes " + parameters.size() + " arguments " + parameters() + ", got " + arguments.length);
        }
        for (int i = 0; i < arguments.length; i++) {
            Parameter parameter = parameters.get(i);
            Object argument = Arguments.present("arguments[" + i + "]", arguments[i]);
            String what = "argument " + i + " of " + name + " (" + parameter.spelled() + ")";
            if (parameter.accepted().isEmpty()) {
                throw new IllegalArgumentException(what + ": no Java argument type maps to this parameter; launches "
                        + "pass DeviceBuffer, int, long and float");
            }
            if (!parameter.accepted().contains(argument.getClass())) {
                throw new IllegalArgumentException(what + " must be "
                        + String.join(
                                " or ",
                                parameter.accepted().stream()
                                        .map(Class::getSimpleName)
                                        .toList())
                        + ", not " + argument.getClass().getSimpleName());
            }
            if (argument instanceof DeviceBuffer buffer) {
                Device.requireSame(what, buffer, buffer.device(), user(), module.device());
                if (parameter.element() != null && buffer.type() != parameter.element()) {
                    throw new IllegalArgumentException(
                            what + " must hold " + parameter.element() + " elements, not " + buffer.type());
                }
                buffer.ensureOpen();
            }
        }
    }

    private static void within(String what, Dim3 extents, Dim3 max) {
        int[] values = {extents.x(), extents.y(), extents.z()};
        int[] bounds = {max.x(), max.y(), max.z()};
        String[] axes = {"x", "y", "z"};
        for (int i = 0; i < 3; i++) {
            if (values[i] < 1 || values[i] > bounds[i]) {
                throw new IllegalArgumentException(what + "." + axes[i] + " (" + values[i] + ") must be from 1 to "
                        + bounds[i] + ", the device's maximum");
            }
        }
    }

    /** The kernel as device checks name it: its name and module. */
    private String user() {
        return name + " (module " + module + ")";
    }

    @Override
    public String toString() {
        return name + parameters();
    }
}
