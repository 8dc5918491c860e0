package dev.panamax.model.testing;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.abort;

/**
 * What a test does when something it needs from outside the repository is missing (the emulated device, torch, GPT-2's
 * vocabulary): it skips, saying why, except where CI has set the prerequisite's property because it provided the
 * prerequisite, so that a skip there is a failure rather than a pass that tested nothing.
 */
public final class Prerequisites {
    private Prerequisites() {}

    /**
     * Skips the calling test, or fails it when {@code property} is true.
     *
     * @param property the system property that makes the prerequisite required, e.g. {@code panamax.requireTorch}
     * @param why what is missing, and why
     */
    public static void missing(String property, String why) {
        if (Boolean.getBoolean(property)) {
            fail(why + " (-D" + property + "=true makes this a failure)");
        }
        abort("skipped: " + why);
    }
}
