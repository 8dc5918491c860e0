package dev.panamax.model.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.InsufficientMemoryException;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.nn.LlamaWeights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.testing.RandomWeights;
import dev.panamax.model.train.TokenDataset;
import dev.panamax.model.train.Trainer;
import dev.panamax.model.train.TrainingOptions;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.Proxy;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Small inputs that imply huge allocations are refused before anything their size did not justify is allocated, with
 * one line saying how much they need; what a run needs is all it allocates.
 */
class MemoryBudgetTest {
    @TempDir
    Path dir;

    private static ModelConfig llama(int dim, int heads, int layers, int seqLen) {
        return new ModelConfig(Architecture.LLAMA, dim, dim, layers, heads, heads, 4, seqLen, 1e-5f, 10000, true);
    }

    /** Zero weights for a Llama configuration, in memory: their size does not depend on the context. */
    private static LlamaWeights<MemorySegment> zeroWeights(ModelConfig config, Arena arena) {
        Map<String, MemorySegment> named = new HashMap<>();
        for (Parameters.Spec spec : Parameters.of(config)) {
            named.put(spec.name(), arena.allocate(spec.size() * Float.BYTES));
        }
        return LlamaWeights.fromNames(config.layers(), named);
    }

    @Test
    void aLlama2cFileWithAHugeContextGetsACacheSizedToTheGeneration() throws IOException {
        // The 8.5 MB file: its whole context would take a 16 GiB cache.
        ModelConfig config = llama(2, 1, 1000, 1 << 20);
        Path file = dir.resolve("long.bin");
        Llama2cCheckpoint.writeRandom(file, config, 1);
        assertTrue(Files.size(file) < 9 << 20, "file of " + Files.size(file) + " bytes");
        int[] prompt = {1, 2, 3};
        int maxTokens = 61;
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file);
                CpuBackend backend = new CpuBackend()) {
            Transformer model =
                    Transformer.llama(backend, config, checkpoint.weights(), 256, prompt.length + maxTokens);
            assertEquals(Transformer.memoryBytes(config, 256, 64), backend.allocatedBytes());
            assertTrue(backend.allocatedBytes() < 2 << 20, backend.allocatedBytes() + " bytes");
            assertEquals(64, model.contextLength());
            model.forward(prompt, 0, prompt.length);
            IllegalStateException full =
                    assertThrows(IllegalStateException.class, () -> model.forward(new int[62], 0, 62));
            assertTrue(
                    full.getMessage().contains("> the cache's contextLength (64; the model's seqLen is 1048576)"),
                    full.getMessage());
            IllegalArgumentException tooLong = assertThrows(
                    IllegalArgumentException.class,
                    () -> Transformer.llama(backend, config, checkpoint.weights(), 256, (1 << 20) + 1));
            assertTrue(tooLong.getMessage().contains("contextLength (1048577) must be in [1,"), tooLong.getMessage());
        }
    }

    @Test
    void aCacheLargerThanTheMachineIsRefusedBeforeAllocating() {
        ModelConfig config = llama(2, 1, 1024, 1 << 30); // a 16 TiB cache for the whole context
        try (Arena arena = Arena.ofConfined();
                CpuBackend backend = new CpuBackend()) {
            LlamaWeights<MemorySegment> weights = zeroWeights(config, arena);
            InsufficientMemoryException e = assertThrows(
                    InsufficientMemoryException.class, () -> Transformer.llama(backend, config, weights, 256));
            assertTrue(
                    e.getMessage()
                            .startsWith("a key/value cache of 1073741824 positions × 1024 layers and the activations"
                                    + " of batches of 256 tokens needs 16.0 TiB but "),
                    e.getMessage());
            assertEquals(0, backend.allocatedBytes());
            Transformer small = Transformer.llama(backend, config, weights, 256, 8);
            assertEquals(8, small.contextLength());
        }
    }

    @Test
    void ropeTablesCoverTheContextInUseAndAreCheckedAgainstTheHeap() {
        ModelConfig config = llama(8, 1, 1, 1 << 26);
        try (Arena arena = Arena.ofConfined();
                CpuBackend backend = new CpuBackend()) {
            LlamaWeights<MemorySegment> weights = zeroWeights(config, arena);
            Transformer model = Transformer.llama(backend, config, weights, 16, 32);
            model.forward(new int[] {1, 2}, 0, 2);
            // The whole context's tables: a cosine and a sine per position and element, 4 GiB on a 2 GiB test heap.
            InsufficientMemoryException e =
                    assertThrows(InsufficientMemoryException.class, () -> backend.rotary(8, 1 << 26, 10000));
            assertTrue(
                    e.getMessage().startsWith("RoPE tables for 67108864 positions needs 4.0 GiB but "), e.getMessage());
            assertTrue(e.getMessage().endsWith(" of Java heap (-Xmx) not in use is available"), e.getMessage());
        }
    }

    @Test
    void aGpt2ConfigWithBillionsOfLayersIsRefusedBeforeListingThem() throws IOException {
        ModelConfig config = new ModelConfig(Architecture.GPT2, 8, 32, 1, 2, 2, 11, 6, 1e-5f, 0, true);
        Gpt2Checkpoint.write(dir, config, RandomWeights.gpt2(config, 1), dev.panamax.model.io.DType.F32);
        Path json = dir.resolve(Gpt2Checkpoint.CONFIG_FILE);
        Files.writeString(
                json,
                Files.readString(json).replace("\"n_layer\":1", "\"n_layer\":2147483647"),
                StandardCharsets.UTF_8);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Gpt2Checkpoint.open(dir));
        assertTrue(
                e.getMessage()
                        .endsWith("holds 16 tensors, but " + json + " (n_layer 2147483647) implies 25769803768:"
                                + " the weights are not of this model"),
                e.getMessage());
    }

    private static final String TEXT = "hostile numbers in a checkpoint must not take the machine down. ".repeat(4);

    private Path checkpoint(Architecture architecture) throws IOException {
        dev.panamax.model.tokenizer.CharVocabulary vocabulary = dev.panamax.model.tokenizer.CharVocabulary.of(TEXT);
        ModelConfig config = architecture == Architecture.GPT2
                ? new ModelConfig(Architecture.GPT2, 16, 32, 2, 2, 2, vocabulary.size(), 16, 1e-5f, 0, true)
                : new ModelConfig(Architecture.LLAMA, 16, 32, 2, 2, 1, vocabulary.size(), 16, 1e-5f, 10000, true);
        Path run = dir.resolve("run");
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(
                    backend, config, TrainingOptions.defaults(2, 8).withWarmupSteps(0), 1);
            trainer.fit(new TokenDataset(vocabulary.encode(TEXT), vocabulary.size(), 8, 0), 0, 1, 0, 0, List.of());
            trainer.save(run);
        }
        return run;
    }

    /** Rewrites one value of the checkpoint's trainer.json, as a hostile or damaged file would have it. */
    private static void edit(Path run, String from, String to) throws IOException {
        Path state = Trainer.checkpointDirectory(run).resolve(Trainer.STATE_FILE);
        String json = Files.readString(state);
        assertTrue(json.contains(from), json);
        Files.writeString(state, json.replace(from, to), StandardCharsets.UTF_8);
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void aHostileTrainerStateIsRefusedWithTheFieldAtFault(Architecture architecture) throws IOException {
        Path run = checkpoint(architecture);
        String[][] cases = {
            {"\"layers\":2", "\"layers\":2147483647", "values but trainer.json's configuration implies"},
            {"\"batch_size\":2", "\"batch_size\":2147483647", "batch_size: 2147483647 × seq_len 8 exceeds 2147483647"},
            {"\"seq_len\":8", "\"seq_len\":17", "seq_len: 17 exceeds the model's context (config.seq_len 16)"},
            {"\"vocab_size\":", "\"vocab_size\":1", "configuration implies"},
        };
        try (CpuBackend backend = new CpuBackend()) {
            assertEquals(1, Trainer.resume(backend, run).step());
        }
        try (CpuBackend backend = new CpuBackend()) {
            for (String[] c : cases) {
                Path state = Trainer.checkpointDirectory(run).resolve(Trainer.STATE_FILE);
                String original = Files.readString(state);
                edit(run, c[0], c[1]);
                ModelFormatException e =
                        assertThrows(ModelFormatException.class, () -> Trainer.resume(backend, run), c[1]);
                assertTrue(e.getMessage().contains(c[2]), e.getMessage());
                Files.writeString(state, original, StandardCharsets.UTF_8);
            }
            assertEquals(0, backend.allocatedBytes());
        }
    }

    @Test
    void aTrainingRunLargerThanTheMachineIsRefusedBeforeAllocating() {
        // panamax train --seq 4096 --batch 65536 on the tiny preset
        ModelConfig config = new ModelConfig(Architecture.GPT2, 128, 512, 4, 4, 4, 65, 4096, 1e-5f, 0, true);
        try (CpuBackend backend = new CpuBackend()) {
            InsufficientMemoryException e = assertThrows(
                    InsufficientMemoryException.class,
                    () -> Trainer.create(backend, config, TrainingOptions.defaults(65536, 4096), 1));
            assertTrue(
                    e.getMessage()
                            .startsWith(
                                    "training GPT2 (" + config.parameterCount() + " parameters, 4 layers: weights,"
                                            + " gradients, AdamW moments and activations) on micro-batches of 65536 × 4096 tokens needs 10.2 TiB but "),
                    e.getMessage());
            assertEquals(0, backend.allocatedBytes());
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void theTrainingEstimateIsWhatATrainerAllocates(Architecture architecture) throws IOException {
        ModelConfig config = architecture == Architecture.GPT2
                ? new ModelConfig(Architecture.GPT2, 16, 48, 3, 2, 2, 20, 16, 1e-5f, 0, true)
                : new ModelConfig(Architecture.LLAMA, 16, 40, 3, 4, 2, 20, 16, 1e-5f, 10000, false);
        TrainingOptions options = TrainingOptions.defaults(3, 8).withWarmupSteps(0);
        int[] tokens = new int[200];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = i * 7 % 20;
        }
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config, options, 1);
            trainer.fit(new TokenDataset(tokens, 20, 8, 0), 0, 1, 0, 0, List.of());
            long saving = 2L * config.parameterCount() * Float.BYTES;
            assertEquals(Trainer.memoryBytes(config, options) - saving, backend.allocatedBytes());
        }
    }

    @Test
    void aParameterLargerThanAJavaArrayIsRefusedBeforeItsArrayOverflows() {
        // 65536 × 32768 = 2^31 values in the token embedding: 8 GiB, within some machines' memory.
        ModelConfig config = new ModelConfig(Architecture.GPT2, 32768, 4, 1, 1, 1, 65536, 1, 1e-5f, 0, true);
        Backend roomy = (Backend) Proxy.newProxyInstance(
                Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, (proxy, method, arguments) -> {
                    if (method.getName().equals("requireMemory")) {
                        return null;
                    }
                    if (method.getName().equals("copiesWeights")) {
                        return false;
                    }
                    throw new AssertionError("allocated before the check: " + method.getName());
                });
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> Trainer.create(roomy, config, TrainingOptions.defaults(1, 1), 1));
        assertTrue(
                e.getMessage().startsWith("parameter wte.weight [65536, 32768] has 2147483648 values"), e.getMessage());
    }
}
