package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.ReferenceOps;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The Transformer's kernels (src/main/cuda/transformer.cu) on the emulated device, launched directly: what the model's
 * backend never asks of them, such as blocks their row reductions cannot take.
 */
class EmulatedTransformerKernelTest {
    private static final String TRANSFORMER = "dev/panamax/cuda/ptx/transformer.ptx";

    private CudaModule module;

    @BeforeEach
    void load() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        module = CudaModule.load(TRANSFORMER);
    }

    @AfterEach
    void unload() {
        if (module != null) {
            module.close();
        }
        EmulatedDevice.deselect();
    }

    /**
     * The row reductions keep one shared slot per thread of a power-of-two row of at most 256 threads: any other block
     * traps before it touches the scratch, rather than writing past it or summing part of the row.
     */
    @Test
    void rowReductionsTrapOnABlockTheirScratchDoesNotFit() {
        int cols = 600;
        for (Dim3 block : List.of(Dim3.of(512), Dim3.of(48), new Dim3(32, 2, 1), new Dim3(64, 1, 2))) {
            try (DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, cols);
                    DeviceBuffer result = DeviceBuffer.allocate(ElementType.FLOAT, 1)) {
                x.copyFrom(new float[cols]);
                KernelFaultException softmax =
                        assertThrows(KernelFaultException.class, () -> module.kernel("softmax_rows")
                                .launch(Dim3.of(1), block, 0, null, x, 0L, cols, 1, cols, 1f));
                assertEquals(KernelFaultException.Kind.TRAP, softmax.kind(), block + ": " + softmax.getMessage());
                assertTrue(
                        softmax.getMessage().contains("__trap() at src/main/cuda/transformer.cu"),
                        softmax.getMessage());
                KernelFaultException argmax =
                        assertThrows(KernelFaultException.class, () -> module.kernel("argmax_rows")
                                .launch(Dim3.of(1), block, 0, null, x, 0L, cols, 1, cols, result));
                assertEquals(KernelFaultException.Kind.TRAP, argmax.kind(), block + ": " + argmax.getMessage());
            }
        }
    }

    @Test
    void rowReductionsRunOnEveryBlockTheyTake() {
        int cols = 600;
        for (int threads = 1; threads <= 256; threads *= 2) {
            try (DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, cols);
                    DeviceBuffer result = DeviceBuffer.allocate(ElementType.FLOAT, 1)) {
                float[] values = new float[cols];
                values[417] = 3;
                x.copyFrom(values);
                module.kernel("argmax_rows")
                        .launch(Dim3.of(1), Dim3.of(threads), 0, null, x, 0L, cols, 1, cols, result);
                float[] best = new float[1];
                result.copyTo(best);
                assertEquals(417f, best[0], threads + " threads");

                // The softmax's block sums and maximum too, against the distribution in double.
                java.util.SplittableRandom random = new java.util.SplittableRandom(threads);
                for (int i = 0; i < cols; i++) {
                    values[i] = (float) (random.nextDouble() * 8 - 4);
                }
                x.copyFrom(values);
                module.kernel("softmax_rows").launch(Dim3.of(1), Dim3.of(threads), 0, null, x, 0L, cols, 1, cols, 1f);
                float[] y = new float[cols];
                x.copyTo(y);
                double[] expected = ReferenceOps.softmax(ReferenceOps.toDouble(values, 0, cols), 1, cols);
                for (int i = 0; i < cols; i++) {
                    // expf's ulp or two, and a float sum of 600 terms in a tree of at most ten levels.
                    assertEquals(expected[i], y[i], 1e-5 * expected[i], threads + " threads, softmax at " + i);
                }
            }
        }
    }
}
