package dev.panamax.model.train;

import static dev.panamax.model.train.TrainingFixtures.config;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.Parallelism;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.testing.FloatArrays;
import dev.panamax.model.testing.TokenFiles;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.train.TrainingOptions.DataOrder;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Training end to end: learning, exact resume from a checkpoint, and the errors bad input gets. */
class TrainerTest {
    private static final String TEXT = TrainingFixtures.TEXT;
    private static final CharVocabulary VOCABULARY = TrainingFixtures.VOCABULARY;

    /** Two micro-batches, warm-up, weight decay and clipping: every part of a step that a resume must restore. */
    private static final TrainingOptions TWO_MICRO_BATCHES =
            new TrainingOptions(2, 16, 2, 3e-3f, 3e-4f, 3, 0.1f, 0.9f, 0.95f, 1e-8f, 0.5f, 42, DataOrder.SHUFFLED);

    @TempDir
    Path dir;

    private static TokenDataset data(double validation) {
        return new TokenDataset(VOCABULARY.encode(TEXT), VOCABULARY.size(), 16, validation);
    }

    /** Collects each step's metrics; stops after {@code stopAt} steps when positive. */
    private static final class Recorder implements Callback {
        final List<Metrics> steps = new ArrayList<>();
        final int stopAt;

        Recorder(int stopAt) {
            this.stopAt = stopAt;
        }

        @Override
        public boolean afterStep(Trainer trainer, Metrics metrics) {
            steps.add(metrics);
            return stopAt == 0 || metrics.step() < stopAt;
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void memorisesAShortTextWithinAFewHundredSteps(Architecture architecture) throws IOException {
        TokenDataset data = data(0);
        TrainingOptions options =
                TrainingOptions.defaults(4, 16).withLearningRate(1e-2f).withWarmupSteps(10);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config(architecture), options, 1);
            Recorder recorder = new Recorder(0);
            List<Metrics> epochs = trainer.fit(data, 0, 200, 0, 0, List.of(recorder));
            float first = recorder.steps.getFirst().trainLoss();
            float last = recorder.steps.getLast().trainLoss();
            // Uniform guessing costs ln(vocabulary) ≈ 3; a memorised text costs next to nothing.
            assertEquals(Math.log(VOCABULARY.size()), first, 0.3, "initial loss");
            assertTrue(last < 0.2, "final loss " + last + " (from " + first + ")");
            assertTrue(recorder.steps.getLast().trainAccuracy() > 0.95, "accuracy");
            assertEquals(200, trainer.step());
            assertTrue(epochs.size() > 1, "epochs reported");
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void resumingFromACheckpointGivesBitIdenticalLossesAndWeights(Architecture architecture) throws IOException {
        TokenDataset data = data(0.2);
        TrainingOptions options = TWO_MICRO_BATCHES;
        int total = 9;
        Recorder straight = new Recorder(0);
        Recorder resumed = new Recorder(0);
        float[] straightWeights;
        int threads = Parallelism.threads();
        // Two fixed thread counts, different on any machine: results must not depend on it.
        Parallelism.setThreads(1);
        try {
            try (CpuBackend backend = new CpuBackend()) {
                Trainer trainer = Trainer.create(backend, config(architecture), options, 5);
                trainer.fit(data, 0, total, 2, 0, List.of(straight));
                straightWeights = allWeights(trainer);
            }
            try (CpuBackend backend = new CpuBackend()) {
                Trainer first = Trainer.create(backend, config(architecture), options, 5);
                first.fit(data, 0, total, 2, 0, List.of(new Recorder(4)));
                first.save(dir);
            }
            Parallelism.setThreads(3);
            try (CpuBackend backend = new CpuBackend()) {
                Trainer second = Trainer.resume(backend, dir);
                assertEquals(4, second.step());
                second.fit(data, 0, total, 2, 0, List.of(resumed));
                assertArrayEquals(straightWeights, allWeights(second));
            }
        } finally {
            Parallelism.setThreads(threads);
        }
        assertEquals(total - 4, resumed.steps.size());
        for (Metrics m : resumed.steps) {
            Metrics expected = straight.steps.get(m.step() - 1);
            assertEquals(Float.floatToIntBits(expected.trainLoss()), Float.floatToIntBits(m.trainLoss()));
            assertEquals(Float.floatToIntBits(expected.gradientNorm()), Float.floatToIntBits(m.gradientNorm()));
            assertEquals(expected.validationLoss(), m.validationLoss());
        }
    }

    @Test
    void anEpochStoppedAndResumedIsSummarisedOverAllItsSteps() throws IOException {
        TokenDataset data = data(0);
        TrainingOptions options = TWO_MICRO_BATCHES;
        int stepsPerEpoch = data.trainWindows() / (options.batchSize() * options.microBatches());
        int stop = stepsPerEpoch / 2;
        assertTrue(stop >= 2 && stepsPerEpoch - stop >= 2, stepsPerEpoch + " steps per epoch");
        int total = stepsPerEpoch + 1;
        List<Metrics> straight;
        try (CpuBackend backend = new CpuBackend()) {
            straight = Trainer.create(backend, config(Architecture.GPT2), options, 5)
                    .fit(data, 0, total, 0, 0, List.of());
        }
        List<Metrics> stopped;
        try (CpuBackend backend = new CpuBackend()) {
            Trainer first = Trainer.create(backend, config(Architecture.GPT2), options, 5);
            stopped = first.fit(data, 0, total, 0, 0, List.of(new Recorder(stop)));
            first.save(dir);
        }
        assertTrue(Files.readString(dir.resolve(Trainer.STATE_FILE)).contains("\"epoch\""));
        List<Metrics> resumed;
        try (CpuBackend backend = new CpuBackend()) {
            resumed = Trainer.resume(backend, dir).fit(data, 0, total, 0, 0, List.of());
        }
        // The stopped fit reports its part of the epoch; the resumed one the whole epoch, then the next, as one fit.
        assertEquals(1, stopped.size());
        assertEquals(stop, stopped.getFirst().step());
        assertEquals(2, straight.size());
        assertEquals(straight.size(), resumed.size());
        for (int e = 0; e < straight.size(); e++) {
            Metrics expected = straight.get(e);
            Metrics actual = resumed.get(e);
            assertEquals(expected.step(), actual.step());
            assertEquals(Float.floatToIntBits(expected.trainLoss()), Float.floatToIntBits(actual.trainLoss()), "loss");
            assertEquals(
                    Float.floatToIntBits(expected.trainAccuracy()),
                    Float.floatToIntBits(actual.trainAccuracy()),
                    "accuracy");
            assertTrue(actual.tokensPerSecond() > 0 && Double.isFinite(actual.tokensPerSecond()));
        }
        assertTrue(stopped.getFirst().trainLoss() != resumed.getFirst().trainLoss(), "the whole epoch, not its part");
    }

    @Test
    void epochSumsThatNoStepsCouldGiveAreRejectedOnResume() throws IOException {
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config(Architecture.GPT2), TWO_MICRO_BATCHES, 5);
            trainer.fit(data(0), 0, 9, 0, 0, List.of(new Recorder(2)));
            trainer.save(dir);
            Path state = dir.resolve(Trainer.STATE_FILE);
            String json = Files.readString(state);
            for (String[] edit : new String[][] {
                {"(\"accuracy_sum\":\\s*)[^,}]+", "$13", "epoch.accuracy_sum: 3.0 exceeds the steps summed (2.0)"},
                {"(\"loss_sum\":\\s*)[^,}]+", "$1-1", "epoch.loss_sum: -1.0 is negative"},
                {"(\"steps\":\\s*)2", "$13", "epoch.steps"},
                {",?\\s*\"seconds\":\\s*[^,}]+", "", "epoch.seconds: is missing"}
            }) {
                String edited = json.replaceFirst(edit[0], edit[1]);
                assertTrue(!edited.equals(json), edit[0] + " in " + json);
                Files.writeString(state, edited);
                ModelFormatException e = assertThrows(ModelFormatException.class, () -> Trainer.resume(backend, dir));
                assertTrue(e.getMessage().contains(edit[2]), e.getMessage());
            }
        }
    }

    @Test
    void hostileNamesInTheStateAreQuotedShortAndWithoutControlCharacters() throws IOException {
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config(Architecture.GPT2), TWO_MICRO_BATCHES, 5);
            trainer.save(dir);
            Path state = dir.resolve(Trainer.STATE_FILE);
            String json = Files.readString(state);
            String hostile = "\\u001b]52;c;" + "A".repeat(100) + "\\u0007";
            String shown = "\"\\u001B]52;c;" + "A".repeat(33) + "... (108 chars)\" is not";
            for (String member : List.of("architecture", "format", "precision")) {
                String edited = json.replaceFirst(
                        "(\"" + member + "\":\\s*)\"[^\"]*\"", "$1" + Matcher.quoteReplacement("\"" + hostile + "\""));
                assertTrue(!edited.equals(json), member + " in " + json);
                Files.writeString(state, edited);
                ModelFormatException e = assertThrows(ModelFormatException.class, () -> Trainer.resume(backend, dir));
                assertTrue(e.getMessage().contains(member + ": " + shown), e.getMessage());
            }
        }
    }

    @Test
    void aDivergedStepLeavesTheWeightsMomentsAndStepAsTheyWere() throws IOException {
        TrainingOptions explosive =
                new TrainingOptions(2, 16, 1, 1e30f, 1e30f, 0, 0.1f, 0.9f, 0.95f, 1e-8f, 1f, 3, DataOrder.SHUFFLED);
        TokenDataset data = data(0);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config(Architecture.GPT2), explosive, 5);
            Path before = dir.resolve("before");
            TrainingDivergedException diverged = null;
            for (int step = 0; diverged == null; step++) {
                assertTrue(step < 10, "no divergence at a learning rate of 1e30");
                trainer.save(before);
                try {
                    trainer.trainStep(data, new int[] {2 * step, 2 * step + 1});
                } catch (TrainingDivergedException e) {
                    diverged = e;
                }
            }
            assertEquals(trainer.step() + 1, diverged.step());
            assertFalse(Float.isFinite(diverged.gradientNorm()));
            Path after = dir.resolve("after");
            trainer.save(after);
            for (String file : List.of(Trainer.WEIGHTS_FILE, Trainer.OPTIMIZER_FILE, Trainer.STATE_FILE)) {
                assertArrayEquals(
                        Files.readAllBytes(before.resolve(file)), Files.readAllBytes(after.resolve(file)), file);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void trainingStateOnTheHeapTrainsBitForBitAsOnNativeMemory(Architecture architecture) throws IOException {
        TokenDataset data = data(0.2);
        TrainingOptions options = TWO_MICRO_BATCHES;
        Recorder heap = new Recorder(0);
        Recorder nativeMemory = new Recorder(0);
        float[] heapWeights;
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config(architecture), options, 5);
            trainer.fit(data, 0, 6, 3, 0, List.of(heap));
            heapWeights = allWeights(trainer);
        }
        try (CpuBackend cpu = new CpuBackend()) {
            // The same backend, but gradients and moments allocated like every other tensor, in native memory.
            Backend backend = (Backend) Proxy.newProxyInstance(
                    Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, (proxy, method, arguments) -> {
                        Method target = method.getName().equals("allocateTrainingState")
                                ? Backend.class.getMethod("allocate", int.class, int.class)
                                : method;
                        try {
                            return target.invoke(cpu, arguments);
                        } catch (InvocationTargetException e) {
                            throw e.getCause();
                        }
                    });
            Trainer trainer = Trainer.create(backend, config(architecture), options, 5);
            trainer.fit(data, 0, 6, 3, 0, List.of(nativeMemory));
            assertArrayEquals(heapWeights, allWeights(trainer));
        }
        assertEquals(6, heap.steps.size());
        assertEquals(6, nativeMemory.steps.size());
        for (int i = 0; i < heap.steps.size(); i++) {
            assertEquals(
                    Float.floatToIntBits(heap.steps.get(i).trainLoss()),
                    Float.floatToIntBits(nativeMemory.steps.get(i).trainLoss()));
            assertEquals(
                    heap.steps.get(i).validationLoss(),
                    nativeMemory.steps.get(i).validationLoss());
        }
    }

    private static float[] allWeights(Trainer trainer) {
        return concatenate(trainer, true);
    }

    private static float[] allGradients(Trainer trainer) {
        return concatenate(trainer, false);
    }

    private static float[] concatenate(Trainer trainer, boolean weights) {
        List<float[]> parts = new ArrayList<>();
        for (Parameters.Spec spec : Parameters.of(trainer.config())) {
            parts.add(weights ? trainer.weight(spec.name()) : trainer.gradient(spec.name()));
        }
        return FloatArrays.concat(parts);
    }

    @Test
    void twoMicroBatchesOfTwoAccumulateTheGradientOfOneBatchOfFour() {
        TokenDataset data = data(0);
        int[] windows = {3, 0, 5, 1};
        float[][] gradients = new float[2][];
        for (int micro = 1; micro <= 2; micro++) {
            TrainingOptions options = new TrainingOptions(
                    4 / micro, 16, micro, 1e-2f, 1e-2f, 0, 0f, 0.9f, 0.95f, 1e-8f, 0f, 1, DataOrder.SHUFFLED);
            try (CpuBackend backend = new CpuBackend()) {
                Trainer trainer = Trainer.create(backend, config(Architecture.LLAMA), options, 9);
                trainer.trainStep(data, windows);
                gradients[micro - 1] = allGradients(trainer);
            }
        }
        // The same mean over the same 64 tokens, summed in another grouping: equal up to float rounding, a few ulps of
        // the largest gradient.
        float largest = 0;
        for (float g : gradients[0]) {
            largest = Math.max(largest, Math.abs(g));
        }
        for (int i = 0; i < gradients[0].length; i++) {
            assertEquals(gradients[0][i], gradients[1][i], 1e-5f * largest, "gradient element " + i);
        }
    }

    @Test
    void aTornCheckpointIsRejectedOnResume() throws IOException {
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(
                    backend,
                    config(Architecture.GPT2),
                    TrainingOptions.defaults(2, 16).withWarmupSteps(1),
                    1);
            trainer.fit(data(0), 0, 2, 0, 0, List.of());
            trainer.save(dir);
            Path state = dir.resolve(Trainer.STATE_FILE);
            Files.writeString(
                    state, Files.readString(state).replace("\"step\":2", "\"step\":1"), StandardCharsets.UTF_8);
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> Trainer.resume(backend, dir));
            assertTrue(e.getMessage().contains("incomplete"), e.getMessage());
            Files.writeString(state, "{\"format\": \"something else\"}");
            assertThrows(ModelFormatException.class, () -> Trainer.resume(backend, dir));
        }
    }

    @Test
    void badTrainingInputGetsAClearError() throws IOException {
        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class, () -> CharVocabulary.of(""));
        assertTrue(empty.getMessage().contains("empty"), empty.getMessage());

        IllegalArgumentException unknown =
                assertThrows(IllegalArgumentException.class, () -> VOCABULARY.encode("panamax: ok"));
        assertTrue(unknown.getMessage().contains("':' U+003A at offset 7"), unknown.getMessage());

        IllegalArgumentException shortText =
                assertThrows(IllegalArgumentException.class, () -> new TokenDataset(new int[10], 5, 16, 0.1));
        assertTrue(shortText.getMessage().contains("needs at least 17"), shortText.getMessage());

        try (CpuBackend backend = new CpuBackend()) {
            IllegalArgumentException tooLong = assertThrows(
                    IllegalArgumentException.class,
                    () -> Trainer.create(backend, config(Architecture.GPT2), TrainingOptions.defaults(2, 64), 1));
            assertTrue(tooLong.getMessage().contains("context length (config.seqLen 32)"), tooLong.getMessage());

            Trainer trainer = Trainer.create(
                    backend,
                    config(Architecture.GPT2),
                    TrainingOptions.defaults(2, 16).withWarmupSteps(0),
                    1);
            trainer.fit(data(0), 0, 1, 0, 0, List.of());
            TokenDataset other = new TokenDataset(VOCABULARY.encode(TEXT.substring(0, 300)), VOCABULARY.size(), 16, 0);
            IllegalArgumentException otherData =
                    assertThrows(IllegalArgumentException.class, () -> trainer.fit(other, 0, 1, 0, 0, List.of()));
            assertTrue(otherData.getMessage().contains("other data"), otherData.getMessage());
            IllegalArgumentException replanned =
                    assertThrows(IllegalArgumentException.class, () -> trainer.fit(data(0), 0, 5, 0, 0, List.of()));
            assertTrue(replanned.getMessage().contains("planned for 1 steps"), replanned.getMessage());
            // A step or an evaluation on windows of another length would have filled the model's inputs partly.
            TokenDataset shorter = new TokenDataset(VOCABULARY.encode(TEXT), VOCABULARY.size(), 8, 0.1);
            for (Executable call : new Executable[] {
                () -> trainer.trainStep(shorter, new int[] {0, 1}), () -> trainer.evaluate(shorter, 0)
            }) {
                assertEquals(
                        "data (vocabulary " + VOCABULARY.size() + ", windows of 8) must match the model's vocabulary ("
                                + VOCABULARY.size() + ") and options.seqLen (16)",
                        assertThrows(IllegalArgumentException.class, call).getMessage());
            }
        }
        CpuBackend closedTwice = new CpuBackend();
        closedTwice.close();
        closedTwice.close(); // does nothing, as on the CUDA backend
        assertThrows(
                IllegalArgumentException.class,
                () -> new TrainingOptions(0, 16, 1, 1e-3f, 0, 0, 0, 0.9f, 0.95f, 1e-8f, 1, 1, DataOrder.SHUFFLED));
    }

    @Test
    void aRunNoLongerThanItsWarmUpIsRefusedWhenPlannedButOnePlannedBeforeResumes() throws IOException {
        TokenDataset data = data(0);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer =
                    Trainer.create(backend, config(Architecture.GPT2), TWO_MICRO_BATCHES.withWarmupSteps(4), 5);
            IllegalArgumentException refused =
                    assertThrows(IllegalArgumentException.class, () -> trainer.fit(data, 0, 4, 0, 0, List.of()));
            assertEquals(
                    "options.warmupSteps (4) must be less than the run's total steps (4), or the learning rate never"
                            + " rises to its peak and decays: use a shorter warm-up (TrainingOptions.withWarmupSteps)"
                            + " or more steps",
                    refused.getMessage());
            assertEquals(0, trainer.totalSteps(), "nothing planned");
            assertEquals(0, trainer.step());
            trainer.fit(data, 0, 5, 0, 0, List.of(new Recorder(2)));
            trainer.save(dir);
        }
        // A checkpoint whose warm-up is as long as its plan, as a fit before the check could write: its schedule is the
        // run's, which a resume continues.
        Path state = dir.resolve(Trainer.STATE_FILE);
        String json = Files.readString(state);
        String planned = json.replaceFirst("(\"warmup_steps\":\\s*)4", "$15");
        assertTrue(!planned.equals(json), json);
        Files.writeString(state, planned);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer resumed = Trainer.resume(backend, dir);
            assertEquals(5, resumed.options().warmupSteps());
            resumed.fit(data, 0, 5, 0, 0, List.of());
            assertEquals(5, resumed.step());
        }
    }

    @Test
    void dataWhoseHashCodesCollideIsNotTakenForTheRunsData() throws IOException {
        int vocabulary = 64;
        int[] tokens = TokenFiles.walk(16 * 9 + 1, vocabulary, 3);
        int at = 0;
        while (!(tokens[at] < vocabulary - 1 && tokens[at + 1] >= 31)) {
            at++;
        }
        // 31·(a+1) + (b−31) = 31·a + b: the same Arrays.hashCode, and the same split, for other tokens.
        int[] collided = tokens.clone();
        collided[at]++;
        collided[at + 1] -= 31;
        assertEquals(Arrays.hashCode(tokens), Arrays.hashCode(collided));
        TokenDataset data = new TokenDataset(tokens, vocabulary, 16, 0);
        TokenDataset other = new TokenDataset(collided, vocabulary, 16, 0);
        ModelConfig config = new ModelConfig(Architecture.GPT2, 16, 32, 1, 2, 2, vocabulary, 16, 1e-5f, 0, true);
        TrainingOptions options = TrainingOptions.defaults(2, 16).withWarmupSteps(0);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config, options, 1);
            trainer.fit(data, 0, 1, 0, 0, List.of());
            trainer.save(dir);
            Trainer resumed = Trainer.resume(backend, dir);
            IllegalArgumentException refused =
                    assertThrows(IllegalArgumentException.class, () -> resumed.fit(other, 0, 1, 0, 0, List.of()));
            assertEquals(
                    "this run was trained on other data (fingerprint " + data.fingerprint() + ", now "
                            + other.fingerprint() + "): resume it on the same text and vocabulary",
                    refused.getMessage());
        }
        assertTrue(data.fingerprint().matches("145\\+0:sha256-128:[0-9a-f]{32}:[0-9a-f]{32}"), data.fingerprint());
    }

    @Test
    void aCheckpointWithTheHashCodeFingerprintOfEarlierVersionsStillResumes() throws IOException {
        double fraction = 0.2;
        int[] tokens = VOCABULARY.encode(TEXT);
        TokenDataset data = new TokenDataset(tokens, VOCABULARY.size(), 16, fraction);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config(Architecture.GPT2), TWO_MICRO_BATCHES, 5);
            trainer.fit(data, 0, 4, 0, 0, List.of(new Recorder(2)));
            trainer.save(dir);
        }
        int split = tokens.length - TokenDataset.heldOutTokens(tokens.length, fraction);
        int[] train = Arrays.copyOfRange(tokens, 0, split);
        int[] validation = Arrays.copyOfRange(tokens, split, tokens.length);
        String old = train.length + "+" + validation.length + ":" + Integer.toHexString(Arrays.hashCode(train)) + ":"
                + Integer.toHexString(Arrays.hashCode(validation));
        Path state = dir.resolve(Trainer.STATE_FILE);
        String json = Files.readString(state);
        String rewritten = json.replaceFirst("(\"data\":\\s*)\"[^\"]*\"", "$1\"" + old + "\"");
        assertTrue(!rewritten.equals(json), json);
        Files.writeString(state, rewritten);
        int[] edited = tokens.clone();
        edited[3] = (edited[3] + 1) % VOCABULARY.size();
        TokenDataset other = new TokenDataset(edited, VOCABULARY.size(), 16, fraction);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer resumed = Trainer.resume(backend, dir);
            IllegalArgumentException refused =
                    assertThrows(IllegalArgumentException.class, () -> resumed.fit(other, 0, 4, 0, 0, List.of()));
            assertTrue(
                    refused.getMessage()
                            .startsWith("this run was trained on other data (fingerprint " + old + ", now "
                                    + train.length + "+" + validation.length + ":"),
                    refused.getMessage());
            resumed.fit(data, 0, 4, 0, 0, List.of());
            assertEquals(4, resumed.step());
            // Its next checkpoint records the digest.
            resumed.save(dir);
            assertTrue(Files.readString(state).contains("\"" + data.fingerprint() + "\""), Files.readString(state));
        }
    }

    @Test
    void learningRateWarmsUpThenDecaysToTheMinimum() {
        TrainingOptions o =
                TrainingOptions.defaults(1, 1).withLearningRate(1e-3f).withWarmupSteps(10);
        assertEquals(1e-4f, o.learningRate(1, 110), 1e-9f);
        assertEquals(1e-3f, o.learningRate(10, 110), 1e-9f);
        assertEquals(5.5e-4f, o.learningRate(60, 110), 1e-7f);
        assertEquals(1e-4f, o.learningRate(110, 110), 1e-9f);
    }
}
