package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.panamax.cuda.ElementType;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Tolerance;
import dev.panamax.model.backend.Backend.Layout;
import java.util.Arrays;
import java.util.function.Function;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The CUDA backend's products at each {@link MatmulPrecision}, on the emulated device, against float64 references.
 *
 * <p>Two references per result. Against the float64 product of the inputs <em>rounded</em> as the precision rounds
 * them (TF32: 10 explicit mantissa bits, BF16: 7, both to nearest even; FP32: unchanged) the only error left is the FP32
 * accumulation, so the bound is FP32's: {@code (k + 4)·2⁻²⁴·Σ|a·b|} (a k-term dot product in any order, plus the
 * bias or old value added). Against the float64 product of the unrounded inputs the rounding of each input adds at
 * most {@code u} relative (u = 2⁻¹¹ for TF32, 2⁻⁸ for BF16, 0 for FP32), so each product term at most {@code 2u + u²}:
 * the bound adds {@code (2u + u²)·Σ|a·b|}. This worst case always holds; the typical error is smaller, about {@code
 * u·√k} times the terms' size, since the roundings' signs are independent. A precision that was silently ignored
 * passes the second check but fails the third: TF32 and BF16 results must differ from FP32's.
 */
class CudaPrecisionTest {
    private static final double EPS = Tolerance.FLOAT_EPSILON;

    /** Runs {@code body} on a backend of the precision: the emulated device here, a GPU in {@link GpuPrecisionTest}. */
    <T> T on(MatmulPrecision precision, Function<CudaBackend, T> body) {
        return EmulatedBackends.run(0, Long.MAX_VALUE, precision, body);
    }

    /**
     * Whether the device rounds the inputs exactly as {@link #round} does, so that the tight check against the rounded
     * inputs applies: on the emulated device always; on a GPU for BF16 (Panamax's own kernel rounds) and FP32, not for
     * TF32, where cuBLAS converts inside its kernels (and may pick a non-tensor-core kernel for a small product).
     */
    boolean roundsAsTheReference(MatmulPrecision precision) {
        return true;
    }

    /** {@code m, in, out}: odd sizes, one row, a one-wide output, a long inner dimension. */
    private static final int[][] SHAPES = {{5, 7, 3}, {1, 33, 9}, {13, 1, 6}, {4, 257, 1}, {17, 64, 31}};

    /**
     * The largest relative error of the device's conversion of an input to the precision: its unit roundoff, where
     * inputs are rounded to nearest.
     */
    double inputError(MatmulPrecision precision) {
        return switch (precision) {
            case FP32 -> 0;
            case TF32 -> 0x1p-11;
            case BF16 -> 0x1p-8;
        };
    }

    /** The precision's rounding of an input, written independently of the emulated device's. */
    private static float round(MatmulPrecision precision, float value) {
        return switch (precision) {
            case FP32 -> value;
            case BF16 -> ElementType.BFLOAT16.round(value);
            case TF32 -> {
                // Keep 10 of the 23 stored mantissa bits: add just under half of the dropped unit, plus the kept
                // part's lowest bit (ties to even), and clear the dropped bits.
                int bits = Float.floatToRawIntBits(value);
                int dropped = 13;
                int half = 1 << (dropped - 1);
                int rounded = (bits + half - 1 + ((bits >>> dropped) & 1)) & -(1 << dropped);
                yield Float.intBitsToFloat(rounded);
            }
        };
    }

    private static float[] rounded(MatmulPrecision precision, float[] values) {
        float[] r = new float[values.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = round(precision, values[i]);
        }
        return r;
    }

    /** Row-major {@code C[i][j] = Σ_p A(i, p)·B(p, j)} and {@code Σ|A·B|}, for A m × k and B k × n given as accessors. */
    private interface Element {
        double at(int row, int col);
    }

    private static double[][] product(int m, int n, int k, Element a, Element b) {
        double[] value = new double[m * n];
        double[] magnitude = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                for (int p = 0; p < k; p++) {
                    double term = a.at(i, p) * b.at(p, j);
                    value[i * n + j] += term;
                    magnitude[i * n + j] += Math.abs(term);
                }
            }
        }
        return new double[][] {value, magnitude};
    }

    private static void assertWithin(
            String what, float[] got, double[] expected, double[] magnitude, double[] extra, double factor, int k) {
        double[] bound = new double[got.length];
        for (int i = 0; i < bound.length; i++) {
            bound[i] = factor * magnitude[i] + (k + 4) * EPS * (magnitude[i] + Math.abs(extra[i]));
        }
        Tolerance.assertClose(what, expected, got, bound);
    }

    private static float[] random(String name, int length) {
        return Inputs.uniform(Inputs.seed(name), length, -1f, 1f);
    }

    private static float[] read(Backend b, Tensor t) {
        float[] values = new float[t.rows() * t.cols()];
        b.read(t, values);
        return values;
    }

    private static Tensor tensor(Backend b, int rows, int cols, float[] values) {
        Tensor t = b.allocate(rows, cols);
        b.write(values, t);
        return t;
    }

    /**
     * {@code y = x·op(W) + bias} for each layout, x a column view of a wider matrix (a strided operand): against the
     * rounded inputs' float64 product tightly, the unrounded inputs' within the rounding bound, and not FP32's bits.
     */
    @ParameterizedTest
    @EnumSource(MatmulPrecision.class)
    void matmulRoundsItsInputsAsThePrecisionSays(MatmulPrecision precision) {
        for (int[] shape : SHAPES) {
            int m = shape[0];
            int in = shape[1];
            int out = shape[2];
            for (Layout layout : Layout.values()) {
                String what = precision + " matmul " + layout + " " + m + "×" + in + "→" + out;
                float[] x = random(what + "x", m * in);
                float[] w = random(what + "w", in * out);
                float[] bias = random(what + "bias", out);
                RunAt run = p -> on(p, b -> {
                    Tensor wide = b.allocate(m, in + 3);
                    Tensor xt = wide.columns(2, in);
                    b.write(x, xt);
                    Tensor wt = layout == Layout.OUT_IN ? tensor(b, out, in, w) : tensor(b, in, out, w);
                    Tensor y = b.allocate(m, out);
                    b.matmul(xt, wt, layout, tensor(b, 1, out, bias), y);
                    return read(b, y);
                });
                float[] got = run.apply(precision);
                boolean[] references =
                        roundsAsTheReference(precision) ? new boolean[] {true, false} : new boolean[] {false};
                for (boolean roundedInputs : references) {
                    MatmulPrecision as = roundedInputs ? precision : MatmulPrecision.FP32;
                    float[] rx = rounded(as, x);
                    float[] rw = rounded(as, w);
                    double[][] ref = product(
                            m,
                            out,
                            in,
                            (i, p) -> rx[i * in + p],
                            (p, j) -> layout == Layout.OUT_IN ? rw[j * in + p] : rw[p * out + j]);
                    double[] extra = new double[m * out];
                    for (int i = 0; i < extra.length; i++) {
                        ref[0][i] += bias[i % out];
                        extra[i] = bias[i % out];
                    }
                    double u = roundedInputs ? 0 : inputError(precision);
                    assertWithin(
                            what + (roundedInputs ? " vs rounded inputs" : " vs FP32 inputs"),
                            got,
                            ref[0],
                            ref[1],
                            extra,
                            2 * u + u * u,
                            in);
                }
                if (precision != MatmulPrecision.FP32 && in > 1 && roundsAsTheReference(precision)) {
                    assertFalse(
                            Arrays.equals(got, run.apply(MatmulPrecision.FP32)),
                            what + ": the same bits as FP32, so the inputs were not rounded");
                }
            }
        }
    }

    private interface RunAt {
        float[] apply(MatmulPrecision precision);
    }

    /**
     * The backward: {@code dx = dy·op(W)ᵀ}, {@code dW += } the weight gradient, {@code dbias +=} the column sums of dy;
     * each a product of rounded operands (the bias gradient's ones are exact in every precision).
     */
    @ParameterizedTest
    @EnumSource(MatmulPrecision.class)
    void matmulBackwardRoundsItsInputsAsThePrecisionSays(MatmulPrecision precision) {
        for (int[] shape : SHAPES) {
            int m = shape[0];
            int in = shape[1];
            int out = shape[2];
            for (Layout layout : Layout.values()) {
                String what = precision + " matmulBackward " + layout + " " + m + "×" + in + "→" + out;
                float[] x = random(what + "x", m * in);
                float[] w = random(what + "w", in * out);
                float[] dy = random(what + "dy", m * out);
                float[] dw0 = random(what + "dw", in * out);
                float[] db0 = random(what + "db", out);
                boolean outIn = layout == Layout.OUT_IN;
                float[][] got = on(precision, b -> {
                    Tensor wt = outIn ? tensor(b, out, in, w) : tensor(b, in, out, w);
                    Tensor dx = b.allocate(m, in);
                    Tensor dw = outIn ? tensor(b, out, in, dw0) : tensor(b, in, out, dw0);
                    Tensor db = tensor(b, 1, out, db0);
                    b.matmulBackward(tensor(b, m, in, x), wt, layout, tensor(b, m, out, dy), dx, false, dw, db);
                    return new float[][] {read(b, dx), read(b, dw), read(b, db)};
                });
                // Where the device's rounding is not the reference's, the unrounded inputs within the rounding bound.
                boolean exact = roundsAsTheReference(precision);
                MatmulPrecision as = exact ? precision : MatmulPrecision.FP32;
                double u = exact ? 0 : inputError(precision);
                double factor = 2 * u + u * u;
                float[] rx = rounded(as, x);
                float[] rw = rounded(as, w);
                float[] rdy = rounded(as, dy);
                // dx[i][p] = Σ_j dy[i][j]·W(j, p), W(j, p) the weight from input p to output j.
                double[][] dx = product(
                        m, in, out, (i, j) -> rdy[i * out + j], (j, p) -> outIn ? rw[j * in + p] : rw[p * out + j]);
                assertWithin(what + " dx", got[0], dx[0], dx[1], new double[m * in], factor, out);
                // dW in W's own layout: [out, in] is dyᵀ·x, [in, out] is xᵀ·dy; added to the old value.
                double[][] dw = outIn
                        ? product(out, in, m, (j, i) -> rdy[i * out + j], (i, p) -> rx[i * in + p])
                        : product(in, out, m, (p, i) -> rx[i * in + p], (i, j) -> rdy[i * out + j]);
                double[] oldDw = new double[in * out];
                for (int i = 0; i < oldDw.length; i++) {
                    oldDw[i] = dw0[i];
                    dw[0][i] += dw0[i];
                }
                assertWithin(what + " dW", got[1], dw[0], dw[1], oldDw, factor, m);
                double[][] db = product(1, out, m, (r, i) -> 1, (i, j) -> rdy[i * out + j]);
                double[] oldDb = new double[out];
                for (int j = 0; j < out; j++) {
                    oldDb[j] = db0[j];
                    db[0][j] += db0[j];
                }
                assertWithin(what + " dbias", got[2], db[0], db[1], oldDb, factor, m);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(MatmulPrecision.class)
    void theBackendReportsItsPrecisionAndTheNamesRoundTrip(MatmulPrecision precision) {
        assertEquals(precision, on(precision, CudaBackend::precision));
        assertEquals(precision, MatmulPrecision.of(precision.spelling().toUpperCase(java.util.Locale.ROOT)));
        try (CpuBackend cpu = new CpuBackend()) {
            assertEquals(MatmulPrecision.FP32, cpu.precision());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MatmulPrecision.of("fp16"));
        assertEquals("precision (fp16) must be one of fp32, tf32, bf16", e.getMessage());
        if (precision != MatmulPrecision.FP32) {
            IllegalArgumentException cpu =
                    assertThrows(IllegalArgumentException.class, () -> Backends.create("cpu", precision));
            assertEquals(
                    "the cpu backend computes products in fp32 only; " + precision.spelling()
                            + " needs a CUDA backend (backend: cpu, chosen with --backend cpu)",
                    cpu.getMessage());
        }
    }
}
