package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.model.generate.Sampler;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.train.TokenDataset;
import dev.panamax.model.train.Trainer;
import dev.panamax.model.train.TrainingOptions;
import dev.panamax.model.train.TrainingOptions.DataOrder;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The host round trips of the CUDA backend's units of work, counted on its stream ({@link CudaBackend#traffic()}): a
 * training step sends each micro-batch's token ids in (the inputs for the embedding and its backward, the targets for
 * the loss) and reads its totals (losses, correct counts, the gradient norm) out once; a decode step sends one token
 * in and reads one logits row out (two for sampling at a temperature: the raw row, which the sampler checks for
 * non-finite logits, and the probabilities the device's softmax makes of it). No operation calls for an explicit
 * synchronization, and the host waits for the stream only for what it reads: uploads from Java arrays go through the
 * backend's ring of pinned staging memory and wait for nothing until they would reuse ring memory a queued copy still
 * reads.
 */
class CudaSynchronisationTest {
    @TempDir
    Path dir;

    private static ModelConfig config(Architecture architecture) {
        return architecture == Architecture.GPT2
                ? new ModelConfig(Architecture.GPT2, 32, 64, 2, 2, 2, 23, 32, 1e-5f, 0, true)
                : new ModelConfig(Architecture.LLAMA, 32, 64, 2, 4, 2, 23, 32, 1e-5f, 10000, true);
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void aTrainingStepSendsTokenIdsAndReadsItsTotalsOnce(Architecture architecture) {
        int micro = 2;
        TrainingOptions options = new TrainingOptions(
                2, 16, micro, 3e-3f, 3e-4f, 3, 0.1f, 0.9f, 0.95f, 1e-8f, 1f, 42, DataOrder.SHUFFLED);
        int[] tokens = new int[400];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = i * 7 % 23;
        }
        TokenDataset data = new TokenDataset(tokens, 23, 16, 0);
        int[] windows = {0, 1, 2, 3};
        CudaBackend.Traffic step = EmulatedBackends.run(0, b -> {
            Trainer trainer = Trainer.create(b, config(architecture), options, 1);
            trainer.trainStep(data, windows); // the first step grows the scratch buffers, uploading a row of ones
            CudaBackend.Traffic before = b.traffic();
            trainer.trainStep(data, windows);
            return b.traffic().since(before);
        });
        assertEquals(new CudaBackend.Traffic(3L * micro, 1, 0, 1, 0), step, "one wait: the totals' read");
    }

    /**
     * Uploads of every size from 1 float to 3 times the staging ring (1 MiB), one after another into distinct tensors
     * and rows of a strided view: each lands whole, and none waits for the stream (they were a wait each).
     */
    @Test
    void uploadsFromArraysDoNotWaitForTheStream() {
        int ring = 1 << 18;
        int[] sizes = {1, 3, 64, 1000, 4097, ring / 2 - 1, ring / 2 + 1, ring - 5, 2 * ring + 17, 3 * ring};
        EmulatedBackends.run(0, b -> {
            List<Tensor> tensors = new ArrayList<>();
            List<float[]> values = new ArrayList<>();
            CudaBackend.Traffic before = b.traffic();
            long copies = 0;
            for (int i = 0; i < sizes.length; i++) {
                float[] v = Inputs.uniform(Inputs.seed("upload " + i), sizes[i], -1f, 1f);
                values.add(v.clone());
                Tensor t = b.allocate(1, sizes[i]);
                b.write(v, t);
                tensors.add(t);
                copies += Math.ceilDiv(sizes[i], ring / 2);
                Arrays.fill(v, Float.NaN); // the array may be reused at once: what was queued is a copy of it
            }
            // Rows of a view whose rows are 5 floats apart: one upload per row.
            Tensor strided = b.allocate(7, 5).columns(1, 3);
            float[] rows = Inputs.uniform(Inputs.seed("upload rows"), 21, -1f, 1f);
            b.write(rows, strided);
            CudaBackend.Traffic uploads = b.traffic().since(before);
            assertEquals(copies + 7, uploads.copiesToDevice());
            assertEquals(0, uploads.synchronizations());
            assertEquals(0, uploads.streamWaits(), "no upload waits for the stream");
            // The emulated device's copies have run when queued, so even these never wait for one (UploadRingTest's
            // late copies do).
            assertEquals(0, uploads.uploadWaits());
            for (int i = 0; i < sizes.length; i++) {
                float[] back = new float[sizes[i]];
                b.read(tensors.get(i), back);
                assertArrayEquals(values.get(i), back, sizes[i] + " floats");
            }
            float[] back = new float[21];
            b.read(strided, back);
            assertArrayEquals(rows, back, "the rows of a strided view");
            // A few token ids, as a decode sends them: far below the ring's size, so no wait of any kind.
            CudaBackend.Traffic small = b.traffic();
            Tensor table = b.allocate(5, 3);
            for (int i = 0; i < 100; i++) {
                b.embedding(new int[] {i % 5, (i + 2) % 5}, 0, table, b.allocate(2, 3));
            }
            CudaBackend.Traffic ids = b.traffic().since(small);
            assertEquals(new CudaBackend.Traffic(100, 0, 0, 0, 0), ids);
            return null;
        });
    }

    @ParameterizedTest
    @EnumSource(value = Architecture.class, names = "LLAMA")
    void aDecodeStepSendsOneTokenAndReadsOneLogitsRow(Architecture architecture) throws IOException {
        Path file = dir.resolve("model.bin");
        Llama2cCheckpoint.writeRandom(file, config(architecture), 3);
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file)) {
            CudaBackend.Traffic[] steps = EmulatedBackends.run(0, b -> {
                Transformer transformer = Transformer.llama(b, checkpoint.config(), checkpoint.weights(), 8);
                Sampler greedy = new Sampler(0, 0, 1, 1);
                Sampler topP = new Sampler(0.8f, 0, 0.9f, 1);
                int token = greedy.sample(b, transformer.forward(new int[] {1, 2, 3}, 0, 3));
                CudaBackend.Traffic before = b.traffic();
                token = greedy.sample(b, transformer.forward(new int[] {token}, 0, 1));
                CudaBackend.Traffic greedyStep = b.traffic().since(before);
                before = b.traffic();
                topP.sample(b, transformer.forward(new int[] {token}, 0, 1));
                CudaBackend.Traffic sampledStep = b.traffic().since(before);
                return new CudaBackend.Traffic[] {greedyStep, sampledStep};
            });
            assertEquals(
                    new CudaBackend.Traffic(1, 1, 0, 1, 0),
                    steps[0],
                    "greedy: one token in, one logits row out, the host waiting only for the row");
            assertEquals(
                    new CudaBackend.Traffic(1, 2, 0, 2, 0),
                    steps[1],
                    "top-p: one token in, the logits row and its probabilities out, the host waiting for each");
        }
    }
}
