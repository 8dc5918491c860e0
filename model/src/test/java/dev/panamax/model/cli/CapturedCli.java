package dev.panamax.model.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/** Runs {@link Panamax} with what it prints to its output and its errors captured as UTF-8 text. */
final class CapturedCli {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();
    private final boolean freshEachRun;

    /**
     * @param freshEachRun whether each run starts with no captured text; otherwise what it prints adds to what earlier
     *     runs printed until {@link #resetOut} or {@link #resetErr}
     */
    CapturedCli(boolean freshEachRun) {
        this.freshEachRun = freshEachRun;
    }

    /** Runs {@code panamax args} and returns its exit status. */
    int run(String... args) {
        if (freshEachRun) {
            resetOut();
            resetErr();
        }
        return Panamax.run(
                args,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    byte[] outBytes() {
        return out.toByteArray();
    }

    String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    void resetOut() {
        out.reset();
    }

    void resetErr() {
        err.reset();
    }
}
