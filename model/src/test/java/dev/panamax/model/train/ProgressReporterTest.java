package dev.panamax.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The progress bar on a terminal and plain lines elsewhere. */
class ProgressReporterTest {
    private static Metrics step(int step, float validation) {
        return new Metrics(step, 1, 2.5f, 0.25f, validation, validation / 10, 1e-3f, 0.5f, 1234);
    }

    private static final Metrics EPOCH = new Metrics(4, 1, 2.25f, 0.3f, 2.0f, 0.4f, 1e-3f, 0.5f, 1000);

    @Test
    void aTerminalGetsOneBarRedrawnInPlaceThenTheEpochLine() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ProgressReporter reporter =
                new ProgressReporter(new PrintStream(bytes, true, StandardCharsets.UTF_8), true, 100, 4, 2);
        for (int s = 1; s <= 4; s++) {
            reporter.afterStep(null, step(s, Float.NaN));
        }
        reporter.afterEpoch(null, EPOCH);
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("\repoch 1/2 [" + "=".repeat(15) + " ".repeat(15) + "] 2/4  loss 2.5000"), out);
        assertTrue(out.contains("[" + "=".repeat(30) + "] 4/4"), out);
        assertEquals(2, out.split("\n", -1).length - 1, "the bar's line, then the epoch's");
        assertTrue(
                out.endsWith("epoch 1/2  step 4: train loss 2.2500 acc 0.300 · val loss 2.0000 acc 0.400 · 1,000"
                        + " tok/s\n"),
                out);
    }

    @Test
    void aLogGetsAPlainLineEveryNStepsAndAtEachValidation() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ProgressReporter reporter =
                new ProgressReporter(new PrintStream(bytes, true, StandardCharsets.UTF_8), false, 2, 4, 1);
        try (CpuBackend backend = new CpuBackend()) {
            ModelConfig c = new ModelConfig(Architecture.GPT2, 8, 16, 1, 2, 2, 5, 8, 1e-5f, 0, true);
            Trainer trainer = Trainer.create(backend, c, TrainingOptions.defaults(1, 4), 1);
            reporter.afterStep(trainer, step(1, Float.NaN));
            reporter.afterStep(trainer, step(2, Float.NaN));
            reporter.afterStep(trainer, step(3, 3.0f));
        }
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertFalse(out.contains("\r"), out);
        assertFalse(out.contains("step 1/"), out);
        assertTrue(out.contains("step 2/0  loss 2.5000  acc 0.250  lr 1.00e-03  |g| 0.500  1,234 tok/s\n"), out);
        assertTrue(out.contains("step 3/0  loss 2.5000") && out.contains("val loss 3.0000  val acc 0.300"), out);
    }
}
