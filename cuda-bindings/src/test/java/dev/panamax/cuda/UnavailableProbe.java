package dev.panamax.cuda;

import java.util.List;

/**
 * Run in a JVM of its own by {@link CudaUnavailableTest}, with library settings that must not load: calls cuBLAS and
 * the driver API several times and prints one line per call, {@code <exception class>: <message>} or {@code ok}.
 */
public final class UnavailableProbe {
    private UnavailableProbe() {}

    /**
     * Makes the calls.
     *
     * @param args ignored
     */
    public static void main(String[] args) {
        List<Runnable> calls = List.of(
                () -> Cublas.create().close(),
                () -> Cublas.create().close(),
                Cublas::libraryVersion,
                () -> CudaDriver.deviceAttribute(0, CudaDriver.ATTR_WARP_SIZE),
                () -> CudaDriver.makePrimaryContextCurrent(0));
        for (Runnable call : calls) {
            try {
                call.run();
                System.out.println("ok");
            } catch (Throwable t) {
                System.out.println(t.getClass().getName() + ": " + t.getMessage());
            }
        }
    }
}
