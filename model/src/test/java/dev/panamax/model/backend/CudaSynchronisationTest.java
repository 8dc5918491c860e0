package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;

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
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The host round trips of the CUDA backend's units of work, counted on its stream ({@link CudaBackend#traffic()}): a
 * training step sends each micro-batch's token ids in (the inputs for the embedding and its backward, the targets for
 * the loss) and reads its totals (losses, correct counts, the gradient norm) out once; a decode step sends one token
 * in and reads one logits row out (two for sampling at a temperature: the raw row, which the sampler checks for
 * non-finite logits, and the probabilities the device's softmax makes of it). No operation calls for an explicit
 * synchronization; the uploads of token ids wait for their own copy, which is not counted as one.
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
        assertEquals(new CudaBackend.Traffic(3L * micro, 1, 0), step);
    }

    @ParameterizedTest
    @EnumSource(value = Architecture.class, names = "LLAMA")
    void aDecodeStepSendsOneTokenAndReadsOneLogitsRow(Architecture architecture) throws IOException {
        Path file = dir.resolve("model.bin");
        Llama2cCheckpoint.writeRandom(file, config(architecture), 3);
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file)) {
            long[][] counts = EmulatedBackends.run(0, b -> {
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
                return new long[][] {
                    {greedyStep.copiesToDevice(), greedyStep.copiesToHost(), greedyStep.synchronizations()},
                    {sampledStep.copiesToDevice(), sampledStep.copiesToHost(), sampledStep.synchronizations()}
                };
            });
            assertEquals(1, counts[0][0], "greedy: one token in");
            assertEquals(1, counts[0][1], "greedy: one logits row out");
            assertEquals(0, counts[0][2], "greedy: no waits");
            assertEquals(1, counts[1][0], "top-p: one token in");
            assertEquals(2, counts[1][1], "top-p: the logits row and its probabilities out");
            assertEquals(0, counts[1][2], "top-p: no waits");
        }
    }
}
