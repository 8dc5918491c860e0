package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class PanamaxTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... args) {
        return Panamax.run(
                args,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void demoChecksEveryKernelAndSucceeds() {
        assertEquals(0, run("demo", "--threads", "1"));
        String printed = out.toString(StandardCharsets.UTF_8);
        assertTrue(printed.contains("sgemm") && printed.contains("sgemv"), printed);
        assertTrue(printed.contains("softmax") && printed.contains("attention"), printed);
        assertTrue(printed.contains("All kernels match the reference."), printed);
    }

    @Test
    void usageErrorsExitWithTwoAndSayWhy() {
        assertEquals(2, run("frobnicate"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("unknown command 'frobnicate'"));
        assertEquals(2, run("demo", "--threads", "zero"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--threads (zero) must be a whole number >= 1"));
        assertEquals(2, run());
    }
}
