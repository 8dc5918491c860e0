package dev.panamax.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.panamax.cuda.ffi.CudaFfi;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The emulated device: Panamax's kernels compiled by the host C++ compiler against {@code panamax_emulator.h} into a
 * kernel library on the class path (built by the Maven build, see the module's README), loaded through FFM. Device
 * memory is host memory here, so its bounds are known to every launch. Chosen per thread, like a CUDA device: {@link
 * Cuda#useEmulatedDevice()}, or for every thread with the system property {@code panamax.cuda.device=emulated}.
 */
final class EmulatedDevice {
    /** The kernel library the build makes from {@code src/main/cuda}. */
    static final String LIBRARY = "dev/panamax/cuda/emulator/libpanamax_emulator.so";

    /** The interface version of {@code emulator.cpp} this class speaks. */
    private static final int ABI = 2;

    /** Bytes of one launch argument: value, allocation base, allocation size. */
    private static final long ARGUMENT_BYTES = 3 * Long.BYTES;

    private static final int MESSAGE_BYTES = 2048;

    /** The chosen schedule seed of each thread that chose the emulated device; null: a GPU. */
    private static final ThreadLocal<Long> SELECTED = ThreadLocal.withInitial(EmulatedDevice::selectedByProperty);

    /** Bytes the emulated device's live buffers hold, in every thread: one device, as a GPU is one per process. */
    private static final AtomicLong ALLOCATED = new AtomicLong();

    private EmulatedDevice() {}

    private static Long selectedByProperty() {
        String device = System.getProperty("panamax.cuda.device", "");
        if (device.equals("emulated")) {
            return Long.getLong("panamax.cuda.emulator.seed", 0);
        }
        if (!device.isEmpty() && !device.equals("gpu")) {
            throw new IllegalArgumentException(
                    "system property panamax.cuda.device must be emulated or gpu, not " + device);
        }
        return null;
    }

    /** Makes the emulated device the calling thread's current device, with a schedule seed (0: index order). */
    static void select(long scheduleSeed) {
        Kernels.require();
        SELECTED.set(scheduleSeed);
    }

    /** Makes a GPU the calling thread's current device again. */
    static void deselect() {
        SELECTED.set(null);
    }

    static boolean isSelected() {
        return SELECTED.get() != null;
    }

    /**
     * The calling thread's schedule seed, or {@code otherwise} on a thread that has not selected the emulated device
     * (a launch of a module loaded elsewhere, which must not depend on the launching thread's choice of device).
     */
    static long scheduleSeed(long otherwise) {
        Long selected = SELECTED.get();
        return selected == null ? otherwise : selected;
    }

    /**
     * Why the emulated device cannot run here.
     *
     * @return the reason, or empty when its kernel library loaded
     */
    static Optional<String> unavailableReason() {
        return Kernels.REASON.isEmpty() ? Optional.empty() : Optional.of(Kernels.REASON);
    }

    /**
     * Emulated device memory: {@code bytes} from a shared arena, 256-byte aligned as {@code cudaMalloc}'s, filled with
     * 0xFF bytes (NaN as floats) so that reading memory never written shows.
     */
    static MemorySegment allocate(Arena arena, long bytes) {
        long total = totalMemory();
        // Reserved before the host allocation, so that two threads cannot both take the last bytes.
        long held = ALLOCATED.addAndGet(bytes);
        if (held > total || held < 0) {
            ALLOCATED.addAndGet(-bytes);
            throw new CudaException(
                    "cudaMalloc",
                    CudaFfi.cudaErrorMemoryAllocation(),
                    "cudaErrorMemoryAllocation",
                    "out of memory (the emulated device's " + total + " bytes, " + Cuda.EMULATED_MEMORY_PROPERTY
                            + ", hold " + (held - bytes) + "; " + bytes + " more were asked for)");
        }
        try {
            return arena.allocate(bytes, 256).fill((byte) 0xff);
        } catch (RuntimeException | OutOfMemoryError e) {
            ALLOCATED.addAndGet(-bytes);
            throw e;
        }
    }

    /** Returns {@code bytes} of a freed buffer to the emulated device. */
    static void free(long bytes) {
        ALLOCATED.addAndGet(-bytes);
    }

    /** The emulated device's memory: its configured size and what its live buffers leave free. */
    static DeviceMemory memory() {
        long total = totalMemory();
        return new DeviceMemory(Math.max(0, total - ALLOCATED.get()), total);
    }

    private static long totalMemory() {
        return property(Cuda.EMULATED_MEMORY_PROPERTY, Cuda.EMULATED_DEFAULT_MEMORY, 0, Long.MAX_VALUE, "of bytes");
    }

    /** The multiprocessors the emulated device reports: {@link Cuda#EMULATED_MULTIPROCESSORS_PROPERTY}, if set. */
    static int multiprocessors(int otherwise) {
        return (int) property(Cuda.EMULATED_MULTIPROCESSORS_PROPERTY, otherwise, 1, Integer.MAX_VALUE, "");
    }

    /** A system property's number in {@code [least, most]}, {@code otherwise} when it is not set. */
    private static long property(String name, long otherwise, long least, long most, String unit) {
        String configured = System.getProperty(name);
        if (configured == null) {
            return otherwise;
        }
        try {
            long value = Long.parseLong(configured.strip());
            if (value >= least && value <= most) {
                return value;
            }
        } catch (NumberFormatException e) {
            // refused below with the property's name
        }
        throw new IllegalArgumentException("system property " + name + " (" + configured + ") must be a number"
                + (unit.isEmpty() ? "" : " " + unit)
                + (most == Long.MAX_VALUE ? " >= " + least : " in [" + least + ", " + most + "]"));
    }

    /** One kernel in a loaded kernel library. */
    record Kernel(Library library, int index, String name, List<String> signature) {}

    /** The functions of one loaded kernel library. */
    record Library(String resource, MethodHandle launch) {}

    /**
     * The kernel of this name, from the main library or one added by {@link #addLibrary(String)}.
     *
     * @return the kernel, or empty when no library has it
     */
    static Optional<Kernel> kernel(String name) {
        Kernels.require();
        synchronized (Kernels.BY_NAME) {
            return Optional.ofNullable(Kernels.BY_NAME.get(name));
        }
    }

    /**
     * Loads another kernel library from the class path, e.g. tests' kernels; its kernels join the table.
     *
     * @param resource the library's class-path resource name
     * @throws IllegalStateException when it cannot be loaded, or defines a kernel already loaded
     */
    static void addLibrary(String resource) {
        Kernels.require();
        synchronized (Kernels.BY_NAME) {
            if (Kernels.LOADED.contains(resource)) {
                return;
            }
            Map<String, Kernel> loaded = load(resource);
            for (String name : loaded.keySet()) {
                if (Kernels.BY_NAME.containsKey(name)) {
                    throw new IllegalStateException(resource + " defines kernel " + name + ", which "
                            + Kernels.BY_NAME.get(name).library().resource() + " defines too");
                }
            }
            Kernels.BY_NAME.putAll(loaded);
            Kernels.LOADED.add(resource);
        }
    }

    /** The main library, loaded once. */
    private static final class Kernels {
        static final Map<String, Kernel> BY_NAME = new HashMap<>();
        static final List<String> LOADED = new ArrayList<>();
        static final String REASON = loadMain();

        private Kernels() {}

        private static String loadMain() {
            try {
                BY_NAME.putAll(load(LIBRARY));
                LOADED.add(LIBRARY);
                return "";
            } catch (RuntimeException e) {
                // Any failure to load leaves the device unavailable, with the reason, rather than failing every use.
                return e instanceof IllegalStateException ? e.getMessage() : e.toString();
            }
        }

        static void require() {
            if (!REASON.isEmpty()) {
                throw new CudaUnavailableException("the emulated device is not available: " + REASON);
            }
        }
    }

    @SuppressWarnings("restricted")
    private static Map<String, Kernel> load(String resource) {
        Path file = extract(resource);
        SymbolLookup symbols = SymbolLookup.libraryLookup(file, Arena.global());
        Linker linker = Linker.nativeLinker();
        MethodHandle abi =
                linker.downcallHandle(find(symbols, resource, "panamax_emulator_abi"), FunctionDescriptor.of(JAVA_INT));
        MethodHandle count =
                linker.downcallHandle(find(symbols, resource, "panamax_kernel_count"), FunctionDescriptor.of(JAVA_INT));
        FunctionDescriptor string = FunctionDescriptor.of(ADDRESS, JAVA_INT);
        MethodHandle name = linker.downcallHandle(find(symbols, resource, "panamax_kernel_name"), string);
        MethodHandle signature = linker.downcallHandle(find(symbols, resource, "panamax_kernel_signature"), string);
        MethodHandle launch = linker.downcallHandle(
                find(symbols, resource, "panamax_launch"),
                FunctionDescriptor.of(
                        JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS,
                        JAVA_LONG));
        Library library = new Library(resource, launch);
        Map<String, Kernel> kernels = new HashMap<>();
        try {
            int version = (int) abi.invokeExact();
            if (version != ABI) {
                throw new IllegalStateException(resource + " speaks emulator interface " + version + ", this class "
                        + ABI + ": rebuild it with the same Panamax (./mvnw -pl cuda-bindings process-classes)");
            }
            int kernelCount = (int) count.invokeExact();
            for (int i = 0; i < kernelCount; i++) {
                String kernel = cString((MemorySegment) name.invokeExact(i));
                String spelled = cString((MemorySegment) signature.invokeExact(i));
                List<String> parameters = spelled.isEmpty() ? List.of() : List.of(spelled.split(","));
                kernels.put(kernel, new Kernel(library, i, kernel, parameters));
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException(e);
        }
        return kernels;
    }

    /** A NUL-terminated string the library owns, for as long as it stays loaded (forever). */
    @SuppressWarnings("restricted")
    private static String cString(MemorySegment pointer) {
        return pointer.reinterpret(Long.MAX_VALUE).getString(0);
    }

    private static MemorySegment find(SymbolLookup symbols, String resource, String symbol) {
        return symbols.find(symbol)
                .orElseThrow(() -> new IllegalStateException(
                        resource + " has no symbol " + symbol + ": it is not an " + "emulated-device kernel library"));
    }

    /**
     * The library as a file: where it is when the class path is a folder, else a copy in a temporary file (from a jar,
     * or from a runtime image, where the module's resources are found only through the module itself).
     */
    private static Path extract(String resource) {
        URL url = EmulatedDevice.class.getClassLoader().getResource(resource);
        try {
            if (url != null && url.getProtocol().equals("file")) {
                return Path.of(url.toURI());
            }
            try (InputStream in = CudaModule.open(resource)) {
                if (in == null) {
                    URL marker = EmulatedDevice.class.getClassLoader().getResource(resource + ".unavailable");
                    String why = marker == null ? "" : ": " + read(marker).strip();
                    throw new IllegalStateException(resource + " is not on the class path" + why + " (the Maven build"
                            + " makes it with g++, C++20; see cuda-bindings/README.md, \"Kernels and the emulated"
                            + " device\")");
                }
                Path copy = Files.createTempFile("panamax-emulator-", ".so");
                copy.toFile().deleteOnExit();
                Files.copy(in, copy, StandardCopyOption.REPLACE_EXISTING);
                return copy;
            }
        } catch (IOException | URISyntaxException e) {
            throw new IllegalStateException("cannot read " + resource + ": " + e.getMessage(), e);
        }
    }

    private static String read(URL url) {
        try (InputStream in = url.openStream()) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Runs one launch to completion on the calling thread. The arguments have been checked against the kernel's
     * parameters: {@link DeviceBuffer} (passed with its allocation's bounds, and held by the caller so that a close
     * waits for the launch, as {@code cudaFree} waits for the device), Integer, Long or Float.
     *
     * @param scheduleSeed the order of blocks and threads (0: index order)
     * @throws KernelFaultException when the kernel faults
     */
    static void launch(Kernel kernel, Dim3 grid, Dim3 block, int sharedBytes, long scheduleSeed, Object[] arguments) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment packed = arena.allocate(Math.max(1, arguments.length) * ARGUMENT_BYTES, Long.BYTES);
            for (int i = 0; i < arguments.length; i++) {
                long at = i * ARGUMENT_BYTES;
                switch (arguments[i]) {
                    case DeviceBuffer buffer -> {
                        MemorySegment memory = buffer.emulatedMemory();
                        packed.set(JAVA_LONG, at, memory.address());
                        packed.set(JAVA_LONG, at + 8, memory.address());
                        packed.set(JAVA_LONG, at + 16, memory.byteSize());
                    }
                    case Integer value -> packed.set(JAVA_LONG, at, value & 0xFFFF_FFFFL);
                    case Long value -> packed.set(JAVA_LONG, at, value);
                    case Float value -> packed.set(JAVA_LONG, at, Float.floatToRawIntBits(value) & 0xFFFF_FFFFL);
                    default -> throw new IllegalArgumentException("unsupported argument " + arguments[i]);
                }
            }
            MemorySegment gridDims = arena.allocateFrom(JAVA_INT, grid.x(), grid.y(), grid.z());
            MemorySegment blockDims = arena.allocateFrom(JAVA_INT, block.x(), block.y(), block.z());
            MemorySegment fault = arena.allocate(JAVA_INT, 6);
            MemorySegment message = arena.allocate(MESSAGE_BYTES);
            int kind = (int) kernel.library()
                    .launch()
                    .invokeExact(
                            kernel.index(),
                            gridDims,
                            blockDims,
                            (long) sharedBytes,
                            packed,
                            scheduleSeed,
                            fault,
                            message,
                            (long) MESSAGE_BYTES);
            if (kind != 0) {
                KernelFaultException.Kind[] kinds = KernelFaultException.Kind.values();
                throw new KernelFaultException(
                        kernel.name(),
                        kinds[Math.min(kind, kinds.length) - 1],
                        new Dim3(
                                fault.getAtIndex(JAVA_INT, 0),
                                fault.getAtIndex(JAVA_INT, 1),
                                fault.getAtIndex(JAVA_INT, 2)),
                        new Dim3(
                                fault.getAtIndex(JAVA_INT, 3),
                                fault.getAtIndex(JAVA_INT, 4),
                                fault.getAtIndex(JAVA_INT, 5)),
                        message.getString(0));
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException(e);
        }
    }
}
