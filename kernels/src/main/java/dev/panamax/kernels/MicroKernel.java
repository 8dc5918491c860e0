package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.ORDER;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * The register-tiled micro-kernel of {@link GemmDriver}'s SGEMM, and the stores of its tiles into C. This is the
 * contract between the packing ({@link GemmPacking}, which writes the panels) and the arithmetic (which reads them).
 *
 * <p><b>Panel layouts.</b> A packed A block of {@code mc} rows and depth {@code kc} is a run of {@link #MR}-high
 * micro-panels, the one of rows {@code [ir, ir + MR)} from index {@code ir·kc}, each stored k-major: for every k, its
 * MR values in row order. A packed B panel of {@code nc} columns is a run of {@link #NR}-wide micro-panels, the one of
 * columns {@code [jr, jr + NR)} from index {@link #panel panel(jr, kc)}, each stored k-major: for every k, its NR
 * values in column order. B micro-panels are {@code kc·NR} floats plus one cache line apart, so that packing, which
 * writes a row of B into every micro-panel at once, does not land in one cache set.
 *
 * <p><b>Padding.</b> The last A micro-panel of a block is padded with zero rows to MR and the last B micro-panel of a
 * panel with zero columns to NR, so {@link #multiply} always computes a whole {@code MR × NR} tile and has no edge
 * case; only the tile's valid {@code mr × nr} corner is stored into C.
 *
 * <p><b>Who applies alpha and beta.</b> {@link #multiply} writes the bare sum {@code Σ_p a[p] ⊗ b[p]} over one depth
 * slice, unscaled, over whatever its output held. {@code storeTile} then writes {@code C = alpha·tile + beta·C}, with
 * the caller's beta on the first depth slice and 1 on later slices, which add to what the first stored; it does not
 * read C when beta is 0, so NaN there does not survive. Where alpha is 1 and C is not read, the driver lets {@link
 * #multiply} store a whole tile straight into C.
 *
 * <p><b>Order.</b> Each element of C is reduced over k in one fixed order, k ascending within a slice and the slices in
 * order, whichever task computes it: results do not depend on the thread count.
 */
final class MicroKernel {
    /** Rows of the register tile: 4 rows × 2 vectors = 8 accumulators, which fit AVX2's 16 registers with room for B. */
    static final int MR = 4;
    /** Columns of the register tile: two vectors. */
    static final int NR = 2 * LANES;
    /** Floats between consecutive packed B micro-panels beyond their own size: one 64-byte cache line. */
    private static final int PANEL_PAD = 16;

    private MicroKernel() {}

    /**
     * Where the B micro-panel of column {@code jr} (a multiple of NR) starts in a packed panel {@code kc} deep. The
     * micro-panels are a cache line more than {@code kc × NR} floats apart: at exactly that, a power of two for the
     * usual depths, the rows {@link GemmPacking} writes into every micro-panel at once would all fall into one cache set.
     */
    static int panel(int jr, int kc) {
        return jr * kc + jr / NR * PANEL_PAD;
    }

    /**
     * The register tile: {@code Σ_p a[p] ⊗ b[p]} over one packed slice, stored as MR rows of NR floats into {@code out}
     * from {@code at}, rows {@code ld} apart. Eight accumulators stay in registers; each k step loads two B vectors and
     * broadcasts four A values.
     */
    static void multiply(int kc, float[] a, int aBase, float[] b, int bBase, float[] out, int at, int ld) {
        FloatVector c00 = FloatVector.zero(FLOATS), c01 = c00, c10 = c00, c11 = c00;
        FloatVector c20 = c00, c21 = c00, c30 = c00, c31 = c00;
        for (int p = 0; p < kc; p++) {
            int ai = aBase + p * MR;
            int bi = bBase + p * NR;
            FloatVector b0 = FloatVector.fromArray(FLOATS, b, bi);
            FloatVector b1 = FloatVector.fromArray(FLOATS, b, bi + LANES);
            FloatVector a0 = FloatVector.broadcast(FLOATS, a[ai]);
            c00 = a0.fma(b0, c00);
            c01 = a0.fma(b1, c01);
            FloatVector a1 = FloatVector.broadcast(FLOATS, a[ai + 1]);
            c10 = a1.fma(b0, c10);
            c11 = a1.fma(b1, c11);
            FloatVector a2 = FloatVector.broadcast(FLOATS, a[ai + 2]);
            c20 = a2.fma(b0, c20);
            c21 = a2.fma(b1, c21);
            FloatVector a3 = FloatVector.broadcast(FLOATS, a[ai + 3]);
            c30 = a3.fma(b0, c30);
            c31 = a3.fma(b1, c31);
        }
        c00.intoArray(out, at);
        c01.intoArray(out, at + LANES);
        c10.intoArray(out, at + ld);
        c11.intoArray(out, at + ld + LANES);
        c20.intoArray(out, at + 2 * ld);
        c21.intoArray(out, at + 2 * ld + LANES);
        c30.intoArray(out, at + 3 * ld);
        c31.intoArray(out, at + 3 * ld + LANES);
    }

    /**
     * Adds the tile into C held in an array, from index {@code at} with rows {@code ldc} apart: {@code C = alpha·tile +
     * beta·C}, C not read when beta is 0. Only the {@code mr × nr} valid corner is written.
     */
    static void storeTile(Product o, boolean firstSlice, float[] tile, int mr, int nr, float[] c, int at) {
        // Alpha and beta are read here rather than passed in: a float live across the micro-kernel's loop would take
        // a vector register from it.
        float alpha = o.alpha();
        float beta = firstSlice ? o.beta() : 1f;
        int ldc = o.c().ld();
        for (int i = 0; i < mr; i++) {
            for (int j = 0; j < nr; j += LANES) {
                int to = at + i * ldc + j;
                FloatVector product =
                        FloatVector.fromArray(FLOATS, tile, i * NR + j).mul(alpha);
                if (nr - j >= LANES) {
                    if (beta != 0f) {
                        product =
                                product.add(FloatVector.fromArray(FLOATS, c, to).mul(beta));
                    }
                    product.intoArray(c, to);
                } else {
                    VectorMask<Float> valid = FLOATS.indexInRange(0, nr - j);
                    if (beta != 0f) {
                        product = product.add(
                                FloatVector.fromArray(FLOATS, c, to, valid).mul(beta));
                    }
                    product.intoArray(c, to, valid);
                }
            }
        }
    }

    /** {@link #storeTile(Product, boolean, float[], int, int, float[], int)} for C in any other segment. */
    static void storeTile(Product o, boolean firstSlice, float[] tile, int mr, int nr, MemorySegment c, long at) {
        float alpha = o.alpha();
        float beta = firstSlice ? o.beta() : 1f;
        int ldc = o.c().ld();
        for (int i = 0; i < mr; i++) {
            for (int j = 0; j < nr; j += LANES) {
                long to = (at + (long) i * ldc + j) * Float.BYTES;
                FloatVector product =
                        FloatVector.fromArray(FLOATS, tile, i * NR + j).mul(alpha);
                if (nr - j >= LANES) {
                    if (beta != 0f) {
                        product = product.add(FloatVector.fromMemorySegment(FLOATS, c, to, ORDER)
                                .mul(beta));
                    }
                    product.intoMemorySegment(c, to, ORDER);
                } else {
                    VectorMask<Float> valid = FLOATS.indexInRange(0, nr - j);
                    if (beta != 0f) {
                        product = product.add(FloatVector.fromMemorySegment(FLOATS, c, to, ORDER, valid)
                                .mul(beta));
                    }
                    product.intoMemorySegment(c, to, ORDER, valid);
                }
            }
        }
    }
}
