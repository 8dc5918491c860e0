package dev.panamax.model.train;

import java.io.PrintStream;
import java.util.Locale;

/**
 * Prints training progress: on a terminal a progress bar redrawn in place after every step, elsewhere (a log file, a
 * pipe) a plain line every {@code every} steps and whenever validation ran; always one line per epoch with its mean
 * training loss and accuracy, validation loss and accuracy, and tokens per second.
 */
public final class ProgressReporter implements Callback {
    private static final int BAR = 30;

    private final PrintStream out;
    private final boolean terminal;
    private final int every;
    private final int stepsPerEpoch;
    private final int epochs;
    private boolean barShown;

    /**
     * A reporter.
     *
     * @param out where to print
     * @param terminal whether out is a terminal (a bar redrawn with carriage returns) or not (plain lines)
     * @param every print a plain line every this many steps, at least 1
     * @param stepsPerEpoch steps in an epoch, for the bar
     * @param epochs the number of epochs planned, for the labels
     */
    public ProgressReporter(PrintStream out, boolean terminal, int every, int stepsPerEpoch, int epochs) {
        if (every < 1 || stepsPerEpoch < 1) {
            throw new IllegalArgumentException(
                    "every (" + every + ") and stepsPerEpoch (" + stepsPerEpoch + ") must be >= 1");
        }
        this.out = out;
        this.terminal = terminal;
        this.every = every;
        this.stepsPerEpoch = stepsPerEpoch;
        this.epochs = epochs;
    }

    /**
     * Returns whether standard output is an interactive terminal.
     *
     * @return whether a progress bar can be drawn
     */
    public static boolean stdoutIsTerminal() {
        return System.console() != null && System.console().isTerminal();
    }

    @Override
    public boolean afterStep(Trainer trainer, Metrics m) {
        String numbers = String.format(
                Locale.ROOT,
                "loss %.4f  acc %.3f  lr %.2e  |g| %.3f  %,.0f tok/s%s",
                m.trainLoss(),
                m.trainAccuracy(),
                m.learningRate(),
                m.gradientNorm(),
                m.tokensPerSecond(),
                m.validated()
                        ? String.format(
                                Locale.ROOT,
                                "  val loss %.4f  val acc %.3f",
                                m.validationLoss(),
                                m.validationAccuracy())
                        : "");
        if (terminal) {
            int inEpoch = (m.step() - 1) % stepsPerEpoch + 1;
            int filled = (int) ((long) BAR * inEpoch / stepsPerEpoch);
            out.print(String.format(
                    Locale.ROOT,
                    "\repoch %d/%d [%s%s] %d/%d  %s\u001b[K",
                    m.epoch(),
                    epochs,
                    "=".repeat(filled),
                    " ".repeat(BAR - filled),
                    inEpoch,
                    stepsPerEpoch,
                    numbers));
            out.flush();
            barShown = true;
        } else if (m.step() % every == 0 || m.validated()) {
            out.println("step " + m.step() + "/" + trainer.totalSteps() + "  " + numbers);
        }
        return true;
    }

    @Override
    public boolean afterEpoch(Trainer trainer, Metrics m) {
        if (barShown) {
            out.println();
            barShown = false;
        }
        out.println(String.format(
                Locale.ROOT,
                "epoch %d/%d  step %d: train loss %.4f acc %.3f · val loss %.4f acc %.3f · %,.0f tok/s",
                m.epoch(),
                epochs,
                m.step(),
                m.trainLoss(),
                m.trainAccuracy(),
                m.validationLoss(),
                m.validationAccuracy(),
                m.tokensPerSecond()));
        return true;
    }
}
