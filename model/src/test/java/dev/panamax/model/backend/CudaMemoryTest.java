package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.panamax.cuda.Cuda;
import dev.panamax.cuda.CudaUnavailableException;
import dev.panamax.model.generate.Sampler;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
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
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

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

    /**
     * The weights, rotary tables, cache and activations of {@link #LLAMA} with batches of 4, and the scratch memory of
     * its forward passes: the smallest scratch buffer (64 floats) for a batch's token ids, and where the context
     * passes 64 keys, split attention's partial softmaxes for 4 queries × 4 heads × a split per 64 keys × (head width
     * 8 + 2).
     */
    private static long inferenceBytes(int contextLength) {
        long partials = contextLength > 64 ? 4L * 4 * Math.ceilDiv(contextLength, 64) * (8 + 2) : 0;
        return weightBytes()
                + Parameters.rotaryFloats(LLAMA, contextLength) * Float.BYTES
                + Transformer.memoryBytes(LLAMA, 4, contextLength)
                + (64 + partials) * Float.BYTES;
    }

    /** Prefills {@code prompt} tokens and decodes {@code decode} more, sampled as a generation does. */
    private static void generate(Transformer model, int prompt, int decode) {
        int[] tokens = new int[prompt];
        for (int i = 0; i < prompt; i++) {
            tokens[i] = i * 5 % LLAMA.vocabSize();
        }
        Sampler sampler = new Sampler(0.8f, 0, 0.9f, 1);
        int token = sampler.sample(model.backend(), model.forward(tokens, 0, prompt));
        for (int i = 0; i < decode; i++) {
            token = sampler.sample(model.backend(), model.forward(new int[] {token}, 0, 1));
        }
    }

    /**
     * Built where the free memory is exactly its estimate, a model runs a prompt past 64 keys (so that decoding splits
     * attention's keys over blocks) and decodes without allocating anything more: the token ids' buffer and the partial
     * softmaxes are reserved when it is built.
     */
    @Test
    void aModelBuiltInExactlyItsEstimateRunsPrefillAndDecode() throws IOException {
        try (Llama2cCheckpoint checkpoint = checkpoint()) {
            long[] allocated = withFree(inferenceBytes(256), b -> {
                Transformer model = Transformer.llama(b, LLAMA, checkpoint.weights(), 4);
                long built = b.allocatedBytes();
                generate(model, 70, 3);
                return new long[] {built, b.allocatedBytes()};
            });
            assertEquals(inferenceBytes(256), allocated[0]);
            assertEquals(allocated[0], allocated[1], "nothing allocated after the model was built");
        }
    }

    /**
     * A GGUF model of F16 weights with batches of 40 (past the 32 rows to which {@code quantized_matvec} pays for
     * F16), so that a prompt's products dequantize weights into scratch memory, and with BF16 products also round
     * their operands: the estimate is what the model allocates when built (one byte less is refused), and a model
     * built in exactly that much runs a prompt and decodes without allocating more.
     */
    @ParameterizedTest
    @EnumSource(
            value = MatmulPrecision.class,
            names = {"FP32", "BF16"})
    void aQuantizedModelReservesItsDequantizedWeightsAndOperands(MatmulPrecision precision) throws IOException {
        Path file = dir.resolve("f16.gguf");
        try (Llama2cCheckpoint checkpoint = checkpoint()) {
            GgufLlama.write(file, LLAMA, checkpoint.weights(), "test", Map.of(), GgmlType.F16);
        }
        try (GgufLlama gguf = GgufLlama.open(file)) {
            long needed = withFree(Long.MAX_VALUE / 4, precision, b -> {
                Transformer.llama(b, gguf, 40, 256);
                return b.allocatedBytes();
            });
            InsufficientMemoryException e = assertThrows(
                    InsufficientMemoryException.class,
                    () -> withFree(needed - 1, precision, b -> Transformer.llama(b, gguf, 40, 256)));
            assertEquals(needed, e.needed(), "the estimate is what the model allocates");
            long[] allocated = withFree(needed, precision, b -> {
                Transformer model = Transformer.llama(b, gguf, 40, 256);
                long built = b.allocatedBytes();
                generate(model, 80, 2);
                return new long[] {built, b.allocatedBytes()};
            });
            assertEquals(needed, allocated[0]);
            assertEquals(needed, allocated[1], "nothing allocated after the model was built");
        }
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
