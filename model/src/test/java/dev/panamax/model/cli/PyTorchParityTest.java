package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.io.SafeTensors;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.testing.Prerequisites;
import dev.panamax.model.testing.RandomWeights;
import dev.panamax.model.testing.SharedData;
import dev.panamax.model.testing.TokenFiles;
import dev.panamax.model.train.LossCurve;
import dev.panamax.model.train.Trainer;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fine-tunes a tiny GPT-2 (from a Hugging Face directory), a tiny Llama (from a llama2.c file) and, where {@code
 * ../shared/data} has it, the pretrained stories260K (llama2.c) for 20 steps with
 * {@code panamax train --init} at 1 and 2 threads, and the same run in PyTorch with {@code
 * bench/peers/finetune_parity.py}, and compares them step by step. Runs where {@code $PANAMAX_PYTHON} (else {@code
 * python3}) imports {@code torch}; skips, saying so, elsewhere.
 */
class PyTorchParityTest {
    private static final int STEPS = 20;
    private static final int BATCH = 4;
    private static final int SEQ = 16;
    private static final int VOCAB = 96;
    private static final String LR = "3e-3";

    /**
     * Both sides compute the same float32 loss, summing in different orders: they agree to about 1e-6, and the
     * issue's target is 1e-3.
     */
    private static final double MAX_LOSS_RELATIVE_DIFFERENCE = 1e-3;

    /**
     * AdamW moves each weight by at most about the learning rate per step, whatever its gradient's size, so a
     * gradient entry's relative rounding error becomes the same relative error in its step. For most entries that is
     * about 1e-6 (the tiny models' weights agree to 5e-7); for entries summed from many terms that nearly cancel (the
     * embedding rows of tokens a batch barely uses, in a pretrained model) it reaches a few percent, and stories260K's
     * weights differ by up to about 1e-4 after 20 steps. A tenth of one step at the peak rate bounds that with room,
     * while a bug (a wrong schedule, decay on a norm, a step on the wrong windows) moves weights by whole steps.
     *
     * <p>GPT-2's key biases are left out: their exact gradient is zero (adding one vector to every key adds the same
     * number to all of a query's scores, which the softmax ignores), so each framework's gradient there is rounding
     * noise of about 1e-9, which AdamW's normalisation turns into steps of up to the learning rate in directions that
     * differ between the two. Their difference is printed, not bounded.
     */
    private static final double MAX_WEIGHT_DIFFERENCE = 0.1 * Double.parseDouble(LR);

    /**
     * The tiny models start from random weights, where no gradient entry nearly cancels: their weights agree to about
     * 1e-6 after 20 steps, so a tenth of a step would let a bug that moves a few weights by a fraction of a step pass.
     */
    private static final double MAX_WEIGHT_DIFFERENCE_FROM_RANDOM = 1e-5;

    /**
     * The gradients' global norm is a sum of squares over every parameter in each framework's order: about 1e-6
     * apart on the tiny models and 6.5e-4 on stories260K, whose nearly cancelling entries dominate the difference; a
     * missing or doubled term moves it by far more.
     */
    private static final double MAX_NORM_RELATIVE_DIFFERENCE = 5e-3;

    private static final ValueLayout.OfFloat FLOAT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    @Test
    void gpt2FromAHuggingFaceDirectoryTrainsAsInPyTorch() throws Exception {
        String python = requireTorch();
        ModelConfig config = new ModelConfig(Architecture.GPT2, 32, 128, 2, 4, 4, VOCAB, 32, 1e-5f, 10000, true);
        Path model = Files.createDirectories(dir.resolve("gpt2"));
        Gpt2Checkpoint.write(model, config, RandomWeights.gpt2(config, 5), DType.F32);
        compare(python, "GPT-2", model, config, "2.5", MAX_WEIGHT_DIFFERENCE_FROM_RANDOM);
    }

    @Test
    void llamaFromALlama2cFileTrainsAsInPyTorch() throws Exception {
        String python = requireTorch();
        // Grouped-query attention and a classifier of its own, the parts GPT-2 does not have.
        ModelConfig config = new ModelConfig(Architecture.LLAMA, 32, 88, 2, 4, 2, VOCAB, 32, 1e-5f, 10000, false);
        Path model = dir.resolve("llama.bin");
        Llama2cCheckpoint.writeRandom(model, config, 5);
        compare(python, "Llama", model, config, "2.5", MAX_WEIGHT_DIFFERENCE_FROM_RANDOM);
    }

    @Test
    void stories260KTrainsAsInPyTorch() throws Exception {
        String python = requireTorch();
        Path model = SharedData.require("stories260K.bin");
        ModelConfig config;
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(model)) {
            config = checkpoint.config();
        }
        compare(python, "stories260K", model, config, "20", MAX_WEIGHT_DIFFERENCE);
    }

    /**
     * Compares the runs; {@code clip} lies within the run's gradient norms, so that it clips some steps only, and the
     * final weights must agree within {@code maxWeightDifference}.
     */
    private void compare(
            String python, String name, Path model, ModelConfig config, String clip, double maxWeightDifference)
            throws Exception {
        // 40 windows: the 20 steps of 4 windows go through the file twice.
        Path data = TokenFiles.write(dir.resolve("data.bin"), TokenFiles.walk(40 * SEQ + 1, config.vocabSize(), 9));
        String[] optimizer = {
            "--lr",
            LR,
            "--min-lr",
            "3e-4",
            "--warmup",
            "5",
            "--weight-decay",
            "0.1",
            "--beta1",
            "0.9",
            "--beta2",
            "0.95",
            "--eps",
            "1e-8",
            "--grad-clip",
            "1"
        };
        List<double[]> firstLosses = null;
        for (int threads = 1; threads <= 2; threads++) {
            Path run = dir.resolve(name + "-" + threads);
            CapturedCli cli = new CapturedCli(true);
            // What both sides are given alike.
            String[] shared = CliFixtures.with(
                    new String[] {
                        "--data",
                        data.toString(),
                        "--steps",
                        Integer.toString(STEPS),
                        "--batch",
                        Integer.toString(BATCH),
                        "--seq",
                        Integer.toString(SEQ),
                        "--threads",
                        Integer.toString(threads)
                    },
                    optimizer);
            String[] train = CliFixtures.with(
                    new String[] {
                        "train",
                        "--init",
                        model.toString(),
                        "--data-order",
                        "sequential",
                        "--val-fraction",
                        "0",
                        "--out",
                        run.toString()
                    },
                    shared);
            assertEquals(0, cli.run(train), cli.err());
            List<double[]> panamax = lossCurve(run);
            assertEquals(STEPS, panamax.size());
            if (firstLosses == null) {
                firstLosses = panamax;
            } else {
                for (int s = 0; s < STEPS; s++) {
                    assertArrayEquals(firstLosses.get(s), panamax.get(s), "step " + (s + 1) + " at 1 and 2 threads");
                }
            }

            Path torchWeights = dir.resolve(name + "-torch-" + threads + ".safetensors");
            List<String> command = new ArrayList<>(List.of(
                    python,
                    SharedData.projectRoot()
                            .resolve("bench/peers/finetune_parity.py")
                            .toString(),
                    "--model",
                    model.toString(),
                    "--out-weights",
                    torchWeights.toString()));
            command.addAll(List.of(shared));
            List<double[]> torch = torchSteps(run(command));
            assertEquals(STEPS, torch.size());

            double lossDifference = 0;
            double rateDifference = 0;
            double normDifference = 0;
            for (int s = 0; s < STEPS; s++) {
                double[] p = panamax.get(s);
                double[] t = torch.get(s);
                lossDifference = Math.max(lossDifference, Math.abs(p[0] - t[0]) / Math.abs(t[0]));
                rateDifference = Math.max(rateDifference, Math.abs(p[1] - t[1]) / t[1]);
                normDifference = Math.max(normDifference, Math.abs(p[2] - t[2]) / t[2]);
            }
            double[] weights = weightDifference(config, run.resolve(Trainer.WEIGHTS_FILE), torchWeights);
            double smallestNorm = Double.POSITIVE_INFINITY;
            double largestNorm = 0;
            for (double[] step : panamax) {
                smallestNorm = Math.min(smallestNorm, step[2]);
                largestNorm = Math.max(largestNorm, step[2]);
            }
            System.out.printf(
                    Locale.ROOT,
                    "PyTorch parity, %s, %d thread(s), %d steps: max loss rel diff %.3g, max lr rel diff %.3g,"
                            + " max grad-norm rel diff %.3g (norms %.3g to %.3g, clipped at %s), max final"
                            + " |weight diff| %.3g (largest |weight| %.3g)%s, loss %.6f to %.6f%n",
                    name,
                    threads,
                    STEPS,
                    lossDifference,
                    rateDifference,
                    normDifference,
                    smallestNorm,
                    largestNorm,
                    clip,
                    weights[0],
                    weights[1],
                    config.architecture() == Architecture.GPT2
                            ? String.format(Locale.ROOT, "; key biases, whose exact gradient is 0: %.3g", weights[2])
                            : "",
                    panamax.getFirst()[0],
                    panamax.getLast()[0]);
            // The clipping must act on some steps and not on others for the comparison to cover both.
            assertTrue(largestNorm > Double.parseDouble(clip) && smallestNorm < Double.parseDouble(clip), name);
            assertTrue(lossDifference <= MAX_LOSS_RELATIVE_DIFFERENCE, name + ": loss differs by " + lossDifference);
            // loss.csv prints the rate with 6 significant digits.
            assertTrue(rateDifference <= 1e-5, name + ": learning rate differs by " + rateDifference);
            assertTrue(
                    normDifference <= MAX_NORM_RELATIVE_DIFFERENCE,
                    name + ": gradient norm differs by " + normDifference);
            assertTrue(weights[0] <= maxWeightDifference, name + ": final weights differ by " + weights[0]);
            assertTrue(panamax.getLast()[0] < panamax.getFirst()[0] - 0.1, name + ": the loss did not fall");
        }
    }

    /** Each step's {train loss, learning rate, gradient norm} from a run's loss.csv. */
    private static List<double[]> lossCurve(Path run) throws IOException {
        List<double[]> steps = new ArrayList<>();
        List<String> lines = Files.readAllLines(run.resolve(LossCurve.CSV));
        for (String line : lines.subList(1, lines.size())) {
            String[] cells = line.split(",", -1);
            steps.add(new double[] {
                Double.parseDouble(cells[2]), Double.parseDouble(cells[6]), Double.parseDouble(cells[7])
            });
        }
        return steps;
    }

    /** Each step's {loss, learning rate, gradient norm} from the script's {@code step N loss L lr R grad_norm G}. */
    private static List<double[]> torchSteps(String output) {
        List<double[]> steps = new ArrayList<>();
        for (String line : output.split("\n")) {
            String[] words = line.strip().split(" ");
            if (words.length == 8 && words[0].equals("step")) {
                assertEquals(steps.size() + 1, Integer.parseInt(words[1]), output);
                steps.add(new double[] {
                    Double.parseDouble(words[3]), Double.parseDouble(words[5]), Double.parseDouble(words[7])
                });
            }
        }
        return steps;
    }

    /**
     * {largest |Panamax − PyTorch| over the final weights but GPT-2's key biases, largest |weight|, largest difference
     * in GPT-2's key biases}.
     */
    private static double[] weightDifference(ModelConfig config, Path panamax, Path torch) throws IOException {
        double difference = 0;
        double keyBiasDifference = 0;
        double largest = 0;
        try (SafeTensors a = SafeTensors.open(panamax);
                SafeTensors b = SafeTensors.open(torch)) {
            for (Parameters.Spec spec : Parameters.of(config)) {
                MemorySegment x = a.floats(spec.name());
                MemorySegment y = b.floats(spec.name());
                assertEquals(spec.shape(), b.tensors().get(spec.name()).shape(), spec.name());
                for (long i = 0; i < spec.size(); i++) {
                    float p = x.getAtIndex(FLOAT, i);
                    double d = Math.abs(p - y.getAtIndex(FLOAT, i));
                    boolean keyBias =
                            spec.name().endsWith("attn.c_attn.bias") && i >= config.dim() && i < 2L * config.dim();
                    if (keyBias) {
                        keyBiasDifference = Math.max(keyBiasDifference, d);
                    } else {
                        difference = Math.max(difference, d);
                    }
                    largest = Math.max(largest, Math.abs(p));
                }
            }
        }
        return new double[] {difference, largest, keyBiasDifference};
    }

    /** The Python that imports numpy and torch: {@code $PANAMAX_PYTHON}, else {@code python3}; skips the test without one. */
    private static String requireTorch() throws InterruptedException {
        String python = System.getenv().getOrDefault("PANAMAX_PYTHON", "python3");
        String reason;
        try {
            Process process = new ProcessBuilder(python, "-c", "import numpy, torch")
                    .redirectErrorStream(true)
                    .start();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            boolean done = process.waitFor(120, TimeUnit.SECONDS);
            reason = done && process.exitValue() == 0
                    ? null
                    : python + " cannot import numpy and torch: " + output.strip();
        } catch (IOException e) {
            reason = "no " + python + " to run: " + e.getMessage();
        }
        if (reason != null) {
            // CI sets panamax.requireTorch once it has installed torch.
            Prerequisites.missing(
                    "panamax.requireTorch",
                    reason + " (set PANAMAX_PYTHON to a Python with torch; see bench/peers/README.md)");
        }
        return python;
    }

    private static String run(List<String> command) throws IOException, InterruptedException {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(300, TimeUnit.SECONDS), "timed out: " + command);
        assertEquals(0, process.exitValue(), output);
        return output;
    }
}
