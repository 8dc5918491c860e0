package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.panamax.cuda.Cuda;
import dev.panamax.cuda.CudaUnavailableException;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.train.TokenDataset;
import dev.panamax.model.train.Trainer;
import dev.panamax.model.train.TrainingOptions;
import dev.panamax.model.train.TrainingOptions.DataOrder;
import java.io.IOException;
import java.nio.file.Path;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The CUDA backend's memory checks on the emulated device, sized by {@link Cuda#EMULATED_MEMORY_PROPERTY} as a GPU of
 * that size: a model, its key/value cache or a training run that does not fit in the device's free memory is refused
 * with what it needs and what is free before anything is allocated; one that fits exactly is created, and takes
 * exactly the bytes estimated.
 */
class CudaMemoryTest {
    private static final ModelConfig LLAMA =
            new ModelConfig(Architecture.LLAMA, 32, 48, 2, 4, 2, 61, 256, 1e-5f, 10000f, false);

    private static final TrainingOptions TRAINING =
            new TrainingOptions(2, 16, 1, 3e-3f, 3e-4f, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 1f, 7, DataOrder.SHUFFLED);

    @TempDir
    Path dir;

    @AfterEach
    void restore() {
        System.clearProperty(Cuda.EMULATED_MEMORY_PROPERTY);
    }

    /**
     * Runs {@code body} on an emulated backend whose device has {@code free} bytes free: the device is sized to what
     * other tests' live buffers hold plus {@code free}. Checks that the backend holds nothing when {@code body} throws.
     */
    private static <T> T withFree(long free, Function<CudaBackend, T> body) {
        return withFree(free, MatmulPrecision.FP32, body);
    }

    private static <T> T withFree(long free, MatmulPrecision precision, Function<CudaBackend, T> body) {
        return EmulatedBackends.run(0, Long.MAX_VALUE, precision, b -> {
            long total = Cuda.memory().totalBytes();
            long held = total - Cuda.memory().freeBytes();
            System.setProperty(Cuda.EMULATED_MEMORY_PROPERTY, Long.toString(held + free));
            assertEquals(free, Cuda.memory().freeBytes());
            try {
                return body.apply(b);
            } catch (InsufficientMemoryException e) {
                assertEquals(0, b.allocatedBytes(), "refused before any allocation: " + e.getMessage());
                throw e;
            }
        });
    }

    private Llama2cCheckpoint checkpoint() throws IOException {
        Path file = dir.resolve("llama.bin");
        Llama2cCheckpoint.writeRandom(file, LLAMA, 3);
        return Llama2cCheckpoint.open(file);
    }

    private static long weightBytes() {
        return LLAMA.parameterCount() * Float.BYTES;
    }

    private static long inferenceBytes(int contextLength) {
        return weightBytes()
                + Parameters.rotaryFloats(LLAMA, contextLength) * Float.BYTES
                + Transformer.memoryBytes(LLAMA, 4, contextLength);
    }

    @Test
    void aModelThatFitsExactlyTakesTheBytesEstimated() throws IOException {
        try (Llama2cCheckpoint checkpoint = checkpoint()) {
            long allocated = withFree(inferenceBytes(256), b -> {
                Transformer.llama(b, LLAMA, checkpoint.weights(), 4);
                return b.allocatedBytes();
            });
            assertEquals(inferenceBytes(256), allocated);
        }
    }

    @Test
    void weightsPastTheFreeMemoryAreRefusedBeforeTheUpload() throws IOException {
        try (Llama2cCheckpoint checkpoint = checkpoint()) {
            long free = weightBytes() / 2;
            InsufficientMemoryException e = assertThrows(
                    InsufficientMemoryException.class,
                    () -> withFree(free, b -> Transformer.llama(b, LLAMA, checkpoint.weights(), 4)));
            assertEquals(inferenceBytes(256), e.needed());
            assertEquals(free, e.available());
            assertTrue(
                    e.getMessage()
                            .startsWith("the weights (" + LLAMA.parameterCount() + " parameters), a key/value cache of"
                                    + " 256 positions × 2 layers and the activations of batches of 4 tokens needs "
                                    + InsufficientMemoryException.bytes(inferenceBytes(256)) + " but "
                                    + InsufficientMemoryException.bytes(free)
                                    + " of device memory (free on the emulated device, which has "),
                    e.getMessage());
        }
    }

    /** The weights fit, the cache for the whole context does not: refused; a shorter context fits. */
    @Test
    void aKeyValueCachePastTheFreeMemoryIsRefusedBeforeAnyAllocation() throws IOException {
        try (Llama2cCheckpoint checkpoint = checkpoint()) {
            long free = inferenceBytes(64);
            InsufficientMemoryException e = assertThrows(
                    InsufficientMemoryException.class,
                    () -> withFree(free, b -> Transformer.llama(b, LLAMA, checkpoint.weights(), 4, 256)));
            assertEquals(inferenceBytes(256), e.needed());
            assertTrue(e.getMessage().contains("a key/value cache of 256 positions"), e.getMessage());
            assertEquals(free, (long) withFree(free, b -> {
                Transformer.llama(b, LLAMA, checkpoint.weights(), 4, 64);
                return b.allocatedBytes();
            }));
        }
    }

    /** Weights, gradients, both AdamW moments and the activations: estimated exactly, refused one byte short. */
    @Test
    void trainingStatePastTheFreeMemoryIsRefusedBeforeAnyAllocation() {
        long needed = withFree(Long.MAX_VALUE / 4, b -> {
            Trainer.create(b, LLAMA, TRAINING, 1);
            return b.allocatedBytes();
        });
        assertEquals(
                needed,
                (long) withFree(needed, b -> {
                    Trainer.create(b, LLAMA, TRAINING, 1);
                    return b.allocatedBytes();
                }),
                "the estimate is what the trainer allocates");
        InsufficientMemoryException e = assertThrows(
                InsufficientMemoryException.class,
                () -> withFree(needed - 1, b -> Trainer.create(b, LLAMA, TRAINING, 1)));
        assertEquals(needed, e.needed());
        assertEquals(needed - 1, e.available());
        assertTrue(
                e.getMessage()
                        .startsWith(
                                "training LLAMA (" + LLAMA.parameterCount() + " parameters, 2 layers:"
                                        + " weights, gradients, AdamW moments and activations) on micro-batches of 2 × 16 tokens needs "),
                e.getMessage());
    }

    /**
     * With BF16 products the estimate adds the two rounded operands' scratch (the largest operand, the logits'
     * gradient here, in bfloat16 twice): one byte less is refused before anything is allocated, and what a training
     * step allocates beyond the same step at FP32 stays within that addition.
     */
    @Test
    void bf16TrainingCountsTheRoundedOperands() {
        long fp32 = withFree(Long.MAX_VALUE / 4, b -> {
            Trainer.create(b, LLAMA, TRAINING, 1);
            return b.allocatedBytes();
        });
        long scratch = Parameters.largestProductOperand(LLAMA, 2 * 16) * 2 * 2;
        long bf16 = fp32 + scratch;
        InsufficientMemoryException e = assertThrows(
                InsufficientMemoryException.class,
                () -> withFree(bf16 - 1, MatmulPrecision.BF16, b -> Trainer.create(b, LLAMA, TRAINING, 1)));
        assertEquals(bf16, e.needed());
        int[] tokens = new int[200];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = i * 7 % LLAMA.vocabSize();
        }
        TokenDataset data = new TokenDataset(tokens, LLAMA.vocabSize(), 16, 0);
        long[] afterStep = new long[2];
        for (MatmulPrecision precision : new MatmulPrecision[] {MatmulPrecision.FP32, MatmulPrecision.BF16}) {
            afterStep[precision == MatmulPrecision.FP32 ? 0 : 1] = withFree(Long.MAX_VALUE / 4, precision, b -> {
                Trainer.create(b, LLAMA, TRAINING, 1).trainStep(data, new int[] {0, 1});
                return b.allocatedBytes();
            });
        }
        assertTrue(
                afterStep[1] - afterStep[0] <= scratch,
                "BF16 allocated " + (afterStep[1] - afterStep[0]) + " bytes more, " + scratch + " estimated");
        assertTrue(afterStep[1] > afterStep[0], "BF16 rounds its operands into scratch memory");
    }

    @Test
    void withoutAGpuTheCudaBackendSaysWhy() {
        assumeFalse(Cuda.isAvailable(), "a GPU is present");
        CudaUnavailableException e = assertThrows(CudaUnavailableException.class, CudaBackend::onGpu);
        assertEquals("CUDA cannot run here: " + Cuda.unavailableReason().orElseThrow(), e.getMessage());
    }
}
