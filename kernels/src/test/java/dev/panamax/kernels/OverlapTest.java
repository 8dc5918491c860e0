package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertRejected;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.panamax.kernels.testing.Inputs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/**
 * Outputs that partly overlap an input are rejected before anything is written (the kernels would read values they had
 * already overwritten); the same storage at the same offset and leading dimension, in place, is accepted, and so are
 * operands side by side in one array.
 */
class OverlapTest {
    private static final String SHARED = "shares memory with";

    @Test
    void rowWiseKernels() {
        float[] a = Inputs.uniform(1, 64, -1, 1);
        float[] w = Inputs.uniform(2, 8, 0.5f, 1.5f);
        float[] stats = new float[8];
        // In place, and side by side (rows of 8, x in columns 0-3, y in columns 4-7).
        Softmax.forward(4, 8, 1f, Softmax.UNMASKED, a, 0, 8, a, 0, 8);
        Softmax.forward(8, 4, 1f, Softmax.UNMASKED, a, 0, 8, a, 4, 8);
        LayerNorm.forward(4, 8, 1e-5f, a, 0, 8, w, 0, w, 0, a, 0, 8, stats, 0, stats, 4);
        RmsNorm.forward(8, 4, 1e-5f, a, 0, 8, w, 0, a, 4, 8, stats, 0);
        // y one float ahead of x: row i's output would overwrite input row i's next element first.
        assertRejected(
                IllegalArgumentException.class,
                "y (from yOffset 1) " + SHARED + " x (from xOffset 0)",
                () -> Softmax.forward(4, 8, 1f, Softmax.UNMASKED, a, 0, 8, a, 1, 8));
        float[] b = Inputs.uniform(4, 128, -1, 1);
        assertRejected(
                IllegalArgumentException.class,
                "dx (from dxOffset 8) " + SHARED + " y (from yOffset 0)",
                () -> Softmax.backward(4, 8, 1f, Softmax.UNMASKED, b, 0, 8, b, 64, 8, b, 8, 8));
        assertRejected(
                IllegalArgumentException.class,
                "y (from yOffset 8) " + SHARED + " x (from xOffset 0)",
                () -> LayerNorm.forward(4, 8, 1e-5f, a, 0, 8, w, 0, w, 0, a, 8, 8, null, 0, null, 0));
        // The statistics written over the input.
        assertRejected(
                IllegalArgumentException.class,
                "rstd (from rstdOffset 2) " + SHARED + " x (from xOffset 0)",
                () -> RmsNorm.forward(4, 8, 1e-5f, a, 0, 8, w, 0, new float[32], 0, 8, a, 2));
        // The same offset with another leading dimension is not in place.
        assertRejected(
                IllegalArgumentException.class,
                "dlogits (from dlogitsOffset 0) " + SHARED + " logits (from logitsOffset 0)",
                () -> CrossEntropy.forward(2, 8, a, 0, 8, new int[] {0, 1}, 0, -100, a, 0, 16));
    }

    /** Native memory is compared by address; a read-only view of an array, which hides the array, by the segments. */
    @Test
    void nativeAndReadOnlySegments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(64 * Float.BYTES);
            // Targets inside the gradient's rows: writing row 0's gradient would change row 1's target.
            MemorySegment logits = arena.allocate(8 * Float.BYTES);
            memory.setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 2, -100);
            memory.setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 3, 3);
            assertRejected(
                    IllegalArgumentException.class,
                    "dlogits (from dlogitsOffset 0) " + SHARED + " targets (from targetsOffset 2)",
                    () -> CrossEntropy.forward(2, 4, logits, 0, 4, memory, 2, -100, memory, 0, 4));
            CrossEntropy.forward(2, 4, logits, 0, 4, memory, 2, -100, memory, 8, 4);
            Softmax.forward(4, 8, 1f, Softmax.UNMASKED, memory, 0, 8, memory, 32, 8);
            assertRejected(
                    IllegalArgumentException.class,
                    "y (from yOffset 4) " + SHARED + " x (from xOffset 0)",
                    () -> Softmax.forward(4, 8, 1f, Softmax.UNMASKED, memory, 0, 8, memory, 4, 8));
        }
        float[] a = Inputs.uniform(5, 64, -1, 1);
        MemorySegment readOnly = MemorySegment.ofArray(a).asReadOnly();
        MemorySegment writable = MemorySegment.ofArray(a);
        Softmax.forward(4, 8, 1f, Softmax.UNMASKED, readOnly, 0, 8, writable, 32, 8);
        assertRejected(
                IllegalArgumentException.class,
                "y (from yOffset 4) " + SHARED + " x (from xOffset 0)",
                () -> Softmax.forward(4, 8, 1f, Softmax.UNMASKED, readOnly, 0, 8, writable, 4, 8));
    }

    /** Q, K and V as columns of one packed array (rows of 3·d), as a fused QKV projection writes them; likewise dQKV. */
    @Test
    void attention() {
        int t = 4;
        int d = 8;
        Attention.Shape shape = new Attention.Shape(1, 1, 1, t, t, d);
        float[] qkv = Inputs.uniform(6, t * 3 * d, -1, 1);
        TensorView q = TensorView.of(qkv, 0, 0, 0, 3 * d);
        TensorView k = TensorView.of(qkv, d, 0, 0, 3 * d);
        TensorView v = TensorView.of(qkv, 2 * d, 0, 0, 3 * d);
        TensorView o = TensorView.dense(new float[t * d], 1, t, d);
        TensorView lse = TensorView.dense(new float[t], 1, t, 1);
        Attention.forward(shape, 0.35f, true, q, k, v, null, o, lse);
        assertRejected(
                IllegalArgumentException.class,
                "o (from o.row(0, 0, 0) at 8) " + SHARED + " k (from k.row(0, 0, 0) at 8)",
                () -> Attention.forward(shape, 0.35f, true, q, k, v, null, k, null));
        assertRejected(
                IllegalArgumentException.class,
                "lse (from lse.row(0, 0, 0) at 3) " + SHARED + " q",
                () -> Attention.forward(shape, 0.35f, true, q, k, v, null, o, TensorView.of(qkv, 3, 0, 0, 1)));
        float[] dqkv = new float[t * 3 * d];
        TensorView dO = TensorView.dense(Inputs.uniform(7, t * d, -1, 1), 1, t, d);
        TensorView dQ = TensorView.of(dqkv, 0, 0, 0, 3 * d);
        TensorView dK = TensorView.of(dqkv, d, 0, 0, 3 * d);
        TensorView dV = TensorView.of(dqkv, 2 * d, 0, 0, 3 * d);
        Attention.backward(shape, 0.35f, true, q, k, v, null, o, lse, dO, dQ, dK, dV);
        // dK is zeroed before K is read: over K it would wipe the keys.
        assertRejected(
                IllegalArgumentException.class,
                "dK (from dK.row(0, 0, 0) at 8) " + SHARED + " k",
                () -> Attention.backward(shape, 0.35f, true, q, k, v, null, o, lse, dO, dQ, k, dV));
        assertRejected(
                IllegalArgumentException.class,
                "dV (from dV.row(0, 0, 0) at 8) " + SHARED + " dK",
                () -> Attention.backward(shape, 0.35f, true, q, k, v, null, o, lse, dO, dQ, dK, dK));
    }

    @Test
    void embedding() {
        float[] a = Inputs.uniform(8, 64, -1, 1);
        int[] tokens = {0, 2};
        // Table: 4 tokens × 8 in floats 0-31; output rows at 32 and 48.
        Embedding.forward(2, 8, 4, tokens, 0, a, 0, a, 32, 16);
        assertRejected(
                IllegalArgumentException.class,
                "out (from outOffset 24) " + SHARED + " table (from tableOffset 0)",
                () -> Embedding.forward(2, 8, 4, tokens, 0, a, 0, a, 24, 16));
        assertRejected(
                IllegalArgumentException.class,
                "dtable (from dtableOffset 16) " + SHARED + " dout (from doutOffset 40)",
                () -> Embedding.backward(2, 8, 4, tokens, 0, a, 40, 8, a, 16));
        // Token ids and output in one native buffer: writing a row would overwrite ids not yet read.
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(64 * Float.BYTES);
            memory.setAtIndex(ValueLayout.JAVA_INT, 0, 1);
            memory.setAtIndex(ValueLayout.JAVA_INT, 1, 3);
            MemorySegment table = MemorySegment.ofArray(a);
            Embedding.forward(2, 8, 4, memory, 0, table, 0, memory, 8, 8);
            assertRejected(
                    IllegalArgumentException.class,
                    "out (from outOffset 1) " + SHARED + " tokens (from tokensOffset 0)",
                    () -> Embedding.forward(2, 8, 4, memory, 0, table, 0, memory, 1, 8));
        }
    }

    /** Calls with nothing to read or write pass whatever their empty operands overlap. */
    @Test
    void emptyOperands() {
        TensorView none = TensorView.dense(new float[0], 1, 0, 8);
        Attention.Shape shape = new Attention.Shape(1, 1, 1, 4, 0, 8);
        TensorView q = TensorView.dense(new float[32], 1, 4, 8);
        TensorView o = TensorView.dense(new float[32], 1, 4, 8);
        TensorView lse = TensorView.dense(new float[4], 1, 4, 1);
        TensorView dO = TensorView.dense(new float[32], 1, 4, 8);
        TensorView dQ = TensorView.dense(new float[32], 1, 4, 8);
        Attention.backward(shape, 1f, false, q, none, none, null, o, lse, dO, dQ, none, none);
        float[] stats = {7f, 7f, 7f, 7f};
        // No columns: nothing is written, not even the statistics, so mean and rstd may coincide.
        LayerNorm.forward(4, 0, 1e-5f, stats, 0, 1, stats, 0, stats, 0, new float[0], 0, 1, stats, 0, stats, 0);
        assertArrayEquals(new float[] {7f, 7f, 7f, 7f}, stats, "nothing written");
    }

    @Test
    void elementwiseKernels() {
        float[] a = Inputs.uniform(3, 64, -1, 1);
        Activations.forward(Activation.GELU_TANH, 32, a, 0, a, 0);
        Elementwise.add(16, a, 0, a, 16, a, 16);
        assertRejected(
                IllegalArgumentException.class,
                "y (from yOffset 3) " + SHARED + " x (from xOffset 0)",
                () -> Activations.forward(Activation.SILU, 32, a, 0, a, 3));
        assertRejected(
                IllegalArgumentException.class,
                "y (from yOffset 8) " + SHARED + " b (from bOffset 16)",
                () -> Elementwise.add(16, a, 40, a, 16, a, 8));
        assertRejected(
                IllegalArgumentException.class,
                "dgate (from dgateOffset 0) " + SHARED + " up (from upOffset 0)",
                () -> Activations.swigluBackward(16, a, 16, a, 0, a, 32, a, 0, a, 48));
    }
}
