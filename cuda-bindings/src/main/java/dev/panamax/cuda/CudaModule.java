package dev.panamax.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * A module of CUDA kernels, loaded from PTX onto the calling thread's current device: a GPU, where the driver
 * compiles the PTX ({@code cuModuleLoadDataEx}), or the emulated device ({@link Cuda#useEmulatedDevice()}), where each
 * kernel the PTX declares must be in the emulator's kernel library, compiled from the same {@code .cu} source.
 *
 * <p>The PTX is read in Java first: its kernels' names, parameter types and static shared memory, against which
 * {@link CudaKernel#launch} checks every launch. Close the module when done (this unloads it); its kernels cannot be
 * launched after, and use after close throws {@link IllegalStateException}.
 *
 * <pre>{@code
 * try (CudaModule module = CudaModule.load("dev/panamax/cuda/ptx/samples.ptx")) {
 *     CudaKernel add = module.kernel("vector_add");
 *     add.launch(Dim3.of((n + 255) / 256), Dim3.of(256), 0, null, a, b, c, n);
 * }
 * }</pre>
 */
public final class CudaModule implements AutoCloseable {
    private final String name;
    private final Map<String, Ptx.Entry> entries;
    private final DeviceLimits limits;
    private final DriverKernels.Module gpu;
    private final Ownership ownership;

    /** On the emulated device, the schedule seed of the thread that loaded the module; 0 on a GPU. */
    private final long scheduleSeed;

    private CudaModule(String name, String ptx) {
        this.name = name;
        this.entries = Ptx.entries(name, ptx);
        if (EmulatedDevice.isSelected()) {
            this.limits = DeviceLimits.emulated();
            this.gpu = null;
            this.scheduleSeed = EmulatedDevice.scheduleSeed(0);
            for (String kernel : entries.keySet()) {
                EmulatedDevice.kernel(kernel)
                        .orElseThrow(() -> new IllegalStateException(name + " declares kernel " + kernel + ", which "
                                + "the emulated device's kernel library does not have: add its .cu source to the "
                                + "emulator's build (cuda-bindings/pom.xml) and PANAMAX_EXPORT it"));
            }
        } else {
            this.gpu = DriverKernels.load(name, ptx);
            this.limits = gpu.limits();
            this.scheduleSeed = 0;
        }
        this.ownership = new Ownership("CudaModule(" + name + ")");
    }

    /**
     * Loads a module from PTX on the class path, e.g. {@code dev/panamax/cuda/ptx/samples.ptx} (Panamax's sample
     * kernels).
     *
     * @param resource the resource name, without a leading slash
     * @return the module, loaded on the calling thread's current device
     * @throws IllegalArgumentException when there is no such resource, or it declares no kernel
     * @throws CudaUnavailableException when CUDA (the driver API included) cannot run here and the emulated device is
     *     not the calling thread's current device, or when the PTX's ISA version ({@code .version}) is newer than the
     *     driver loads
     * @throws IllegalStateException on the emulated device, when its kernel library lacks one of the PTX's kernels
     * @throws CudaException when the driver rejects the PTX
     */
    public static CudaModule load(String resource) {
        Arguments.present("resource", resource);
        return new CudaModule(resource, read(resource));
    }

    /**
     * Loads a module from PTX text.
     *
     * @param name names the module in messages
     * @param ptx the PTX
     * @return the module, loaded on the calling thread's current device
     * @throws IllegalArgumentException when the text declares no kernel
     * @throws CudaUnavailableException when CUDA (the driver API included) cannot run here and the emulated device is
     *     not the calling thread's current device, or when the PTX's ISA version ({@code .version}) is newer than the
     *     driver loads
     * @throws IllegalStateException on the emulated device, when its kernel library lacks one of the PTX's kernels
     * @throws CudaException when the driver rejects the PTX
     */
    public static CudaModule fromPtx(String name, String ptx) {
        return new CudaModule(Arguments.present("name", name), Arguments.present("ptx", ptx));
    }

    /**
     * One of the module's kernels.
     *
     * @param kernel its name, as the PTX's {@code .entry} spells it (an {@code extern "C"} kernel's own name)
     * @return the kernel
     * @throws IllegalArgumentException when the module has no kernel of this name (the message lists those it has)
     */
    public CudaKernel kernel(String kernel) {
        Arguments.present("kernel", kernel);
        ownership.ensureOpen();
        Ptx.Entry entry = entries.get(kernel);
        if (entry == null) {
            throw new IllegalArgumentException(
                    "no kernel " + kernel + " in " + name + "; its kernels are " + kernelNames());
        }
        if (gpu == null) {
            return CudaKernel.emulated(
                    this, entry, EmulatedDevice.kernel(kernel).orElseThrow());
        }
        // Held so that a close on another thread cannot unload the module under the lookups.
        acquire();
        try {
            MemorySegment function = gpu.function(kernel);
            return CudaKernel.onGpu(this, entry, function, gpu.maxThreadsPerBlock(function));
        } finally {
            release();
        }
    }

    /**
     * The names of the module's kernels.
     *
     * @return the names, sorted
     */
    public List<String> kernelNames() {
        return entries.keySet().stream().sorted().toList();
    }

    /**
     * Whether the module was loaded on the emulated device.
     *
     * @return true on the emulated device, false on a GPU
     */
    public boolean isEmulated() {
        return gpu == null;
    }

    /**
     * The limits of the device the module was loaded on.
     *
     * @return its limits
     */
    public DeviceLimits limits() {
        return limits;
    }

    /**
     * The emulated device's schedule seed for a launch from the calling thread: the thread's own when it has selected
     * the emulated device, else the one the module was loaded with.
     */
    long scheduleSeed() {
        return EmulatedDevice.scheduleSeed(scheduleSeed);
    }

    /**
     * Starts a use of the module by a launch: a close waits until {@link #release()}.
     *
     * @return the GPU module, or null on the emulated device
     * @throws IllegalStateException when the module is closed
     */
    DriverKernels.Module acquire() {
        ownership.acquire();
        return gpu;
    }

    /** Ends a use started by {@link #acquire()}. */
    void release() {
        ownership.release();
    }

    /** The device the module was loaded on: ordinal 0 for the emulated device. */
    Device device() {
        return new Device(isEmulated(), gpu == null ? 0 : gpu.device());
    }

    /**
     * Unloads the module ({@code cuModuleUnload} on a GPU); later calls are no-ops. Launches and kernel lookups in
     * progress on other threads are waited for first.
     */
    @Override
    public void close() {
        if (ownership.close() && gpu != null) {
            gpu.unload();
        }
    }

    @Override
    public String toString() {
        return ownership.toString();
    }

    private static String read(String resource) {
        try (InputStream in = open(resource)) {
            if (in == null) {
                throw new IllegalArgumentException("no class-path resource " + resource);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + resource, e);
        }
    }

    /** This module's own resources first (a named module's packages are encapsulated), then the caller's class path. */
    static InputStream open(String resource) throws IOException {
        InputStream own = CudaModule.class.getModule().getResourceAsStream(resource);
        if (own != null) {
            return own;
        }
        ClassLoader loader = Thread.currentThread().getContextClassLoader();
        return (loader != null ? loader : ClassLoader.getSystemClassLoader()).getResourceAsStream(resource);
    }
}
