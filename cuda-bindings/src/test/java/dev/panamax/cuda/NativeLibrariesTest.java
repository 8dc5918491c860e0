package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;
import org.opentest4j.TestAbortedException;

/** A missing library skips the tests that need it, with the reason in the build output, unless it is required. */
class NativeLibrariesTest {
    private static final Libraries.Found MISSING =
            new Libraries.Found(Optional.empty(), "libpmxtest not found, looked for libpmxtest.so.13 in: /nowhere");

    private final ByteArrayOutputStream printed = new ByteArrayOutputStream();
    private final PrintStream log = new PrintStream(printed, true, StandardCharsets.UTF_8);

    @Test
    void aMissingLibrarySkipsWithTheReasonPrintedOnce() {
        String what = "the test library (skip " + System.nanoTime() + ")";
        TestAbortedException skip =
                assertThrows(TestAbortedException.class, () -> NativeLibraries.require(MISSING, what, false, log));
        assertEquals(
                "these tests need " + what + ": libpmxtest not found, looked for libpmxtest.so.13 " + "in: /nowhere",
                skip.getMessage());
        assertThrows(TestAbortedException.class, () -> NativeLibraries.require(MISSING, what, false, log));
        assertEquals(
                "Skipping the tests that need " + what + ": libpmxtest not found, looked for libpmxtest.so.13 in: "
                        + "/nowhere (-Dpanamax.cuda.requireLibraries=true makes this a failure)"
                        + System.lineSeparator(),
                printed.toString(StandardCharsets.UTF_8));
    }

    @Test
    void aRequiredMissingLibraryFailsWithTheReason() {
        AssertionFailedError failure = assertThrows(
                AssertionFailedError.class, () -> NativeLibraries.require(MISSING, "the test library", true, log));
        assertEquals(
                "these tests need the test library: libpmxtest not found, looked for libpmxtest.so.13 in: /nowhere "
                        + "(panamax.cuda.requireLibraries is true; leave it unset to skip them instead)",
                failure.getMessage());
        assertEquals("", printed.toString(StandardCharsets.UTF_8));
    }

    @Test
    void aFoundLibraryPassesEitherWay() {
        Libraries.Found found = new Libraries.Found(Optional.of(Path.of("/lib/libpmxtest.so.13")), "");
        assertDoesNotThrow(() -> NativeLibraries.require(found, "the test library", true, log));
        assertDoesNotThrow(() -> NativeLibraries.require(found, "the test library", false, log));
        assertEquals("", printed.toString(StandardCharsets.UTF_8));
    }
}
