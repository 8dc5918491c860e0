package dev.panamax.model.backend;

import java.util.Arrays;
import java.util.Objects;

/** {@link Backend.StepTotals} of a host backend: plain fields, set as the step computes them. */
final class HostStepTotals implements Backend.StepTotals {
    private final float[] losses;
    private final long[] correct;
    private float norm = Float.NaN;
    private float scale = Float.NaN;
    private boolean clipped;

    HostStepTotals(int microBatches) {
        if (microBatches < 1) {
            throw new IllegalArgumentException("microBatches (" + microBatches + ") must be >= 1");
        }
        losses = new float[microBatches];
        correct = new long[microBatches];
    }

    /** The host totals {@code totals} is, checked to have micro-batch {@code microBatch}. */
    static HostStepTotals of(Backend.StepTotals totals, int microBatch) {
        if (!(Objects.requireNonNull(totals, "totals") instanceof HostStepTotals host)) {
            throw new IllegalArgumentException("totals (" + totals + ") must come from this backend");
        }
        Objects.checkIndex(microBatch, host.losses.length);
        return host;
    }

    void record(int microBatch, float loss, long count) {
        losses[microBatch] = loss;
        correct[microBatch] = count;
    }

    void clip(float gradientNorm, float maxNorm) {
        clipped = true;
        norm = gradientNorm;
        scale = !Float.isFinite(gradientNorm)
                ? Float.NaN
                : maxNorm > 0 && gradientNorm > maxNorm ? maxNorm / gradientNorm : 1f;
    }

    /** The clipping factor; NaN after a norm that was not finite. */
    float scale() {
        if (!clipped) {
            throw new IllegalStateException("clipGradients must come before adamw with a step's totals");
        }
        return scale;
    }

    @Override
    public Backend.StepValues read() {
        return new Backend.StepValues(losses.clone(), correct.clone(), norm);
    }

    @Override
    public String toString() {
        return "host step totals " + Arrays.toString(losses);
    }
}
