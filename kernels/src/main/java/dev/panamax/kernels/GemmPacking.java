package dev.panamax.kernels;

import static dev.panamax.kernels.MicroKernel.MR;
import static dev.panamax.kernels.MicroKernel.NR;
import static dev.panamax.kernels.MicroKernel.panel;
import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.ORDER;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The packing of {@link GemmDriver}'s SGEMM: a block of {@code op(A)} into MR-high micro-panels and a panel of {@code
 * op(B)} into NR-wide ones, zero-padded, in the layouts {@link MicroKernel} reads. Operands that are float arrays are
 * read in place; other segments are read with segment vector loads (B, streamed once) or copied through {@link
 * Staging} first (A, and the edges of B). Transposed operands are turned with in-register 8×8 transposes where the
 * vector has 8 lanes.
 */
final class GemmPacking {
    /** MR floats: one k step of a packed A micro-panel, moved as one vector when packing a transposed A. */
    private static final VectorSpecies<Float> A_COLUMN = FloatVector.SPECIES_128;
    /** Rows of an untransposed B that {@link #packB} reads together. */
    private static final int ROWS_TOGETHER = 8;
    /** The vector width {@link #transpose8} is written for; other widths gather. */
    private static final int TRANSPOSED_LANES = 8;
    /** For each stage of {@link #transpose8}, {@code s} = 1, 2, 4: the lanes whose index has bit s set. */
    private static final VectorMask<Float> BIT1 = lanesWith(1), BIT2 = lanesWith(2), BIT4 = lanesWith(4);
    /** For each stage: lane i takes lane {@code i ^ s}, which is {@code i - s} where bit s is set, else {@code i + s}. */
    private static final VectorShuffle<Float> SWAP1 = swap(1), SWAP2 = swap(2), SWAP4 = swap(4);

    private GemmPacking() {}

    /**
     * Per-thread buffers that segment operands are copied through, grown to the largest blocks the thread has packed
     * from such operands: a thread that only multiplies arrays, or small matrices, keeps next to nothing.
     */
    static final class Staging {
        /** A block of A copied out of a segment that is not a float array, so that it is packed like an array. */
        float[] stagedA = new float[0];
        /** One row of a B panel copied out of such a segment. */
        float[] stagedRow = new float[0];
        /** NR rows of a transposed B (kc floats each, zeros past the matrix's edge), copied out to be gathered in L1. */
        float[] stagedB = new float[0];
        /** Offsets of LANES consecutive rows of {@link #stagedB}. */
        final int[] stagedOffsets = new int[LANES];

        /**
         * Grows the buffers that {@code o}'s operands need to pack blocks of A up to {@code rows × depth} and panels of
         * B up to {@code depth × columns} (0 rows or columns: that operand is not packed here).
         */
        Staging fit(Product o, Product.ArrayOperands arrays, int rows, int depth, int columns) {
            if (rows > 0 && arrays.a() == null && stagedA.length < rows * depth) {
                stagedA = new float[rows * depth];
            }
            if (columns > 0 && !o.transB() && arrays.b() == null && stagedRow.length < columns) {
                stagedRow = new float[columns];
            }
            if (columns > 0 && o.transB() && stagedB.length < NR * depth) {
                stagedB = new float[NR * depth];
            }
            return this;
        }
    }

    /**
     * Packs {@code op(B)[pc:pc+kc, jc:jc+nc]} for an untransposed B into NR-wide micro-panels, each stored k-major
     * ({@code NR} floats per k), zero-padded to a whole panel so that the micro-kernel never needs an edge case. B is
     * read front to back, {@link #ROWS_TOGETHER} rows at a time: one row at a time is one stream of misses, which
     * leaves most of the memory bandwidth unused.
     */
    static void packB(
            Product o, Product.ArrayOperands arrays, int pc, int kc, int jc, int nc, Staging w, float[] packed) {
        if (o.transB()) {
            packTransposedB(o, arrays, pc, kc, jc, nc, w, packed);
            return;
        }
        int ldb = o.b().ld();
        int whole = nc - nc % NR;
        int grouped = kc - kc % ROWS_TOGETHER;
        long start = o.b().offset() + (long) pc * ldb + jc;
        for (int p = 0; p < grouped; p += ROWS_TOGETHER) {
            long rows = start + (long) p * ldb;
            if (arrays.b() != null) {
                int first = arrays.bFirst() + Math.toIntExact(rows - o.b().offset());
                packBRows(arrays.b(), first, ldb, whole, kc, p, packed);
            } else {
                packBRows(o.b().data(), rows, ldb, whole, kc, p, packed);
            }
        }
        // What the groups leave, a row at a time: the last rows, and a micro-panel cut short by the matrix's edge.
        for (int p = 0; p < kc; p++) {
            int from = p < grouped ? whole : 0;
            if (from < nc) {
                long at = start + (long) p * ldb + from;
                if (arrays.b() != null) {
                    int first = arrays.bFirst() + Math.toIntExact(at - o.b().offset());
                    packBRow(arrays.b(), first, from, nc, kc, p, packed);
                } else {
                    MemorySegment.copy(o.b().data(), FLOAT, at * Float.BYTES, w.stagedRow, 0, nc - from);
                    packBRow(w.stagedRow, 0, from, nc, kc, p, packed);
                }
            }
        }
    }

    /** Rows {@code p} to {@code p + ROWS_TOGETHER} of the panel's first {@code whole} columns, from an array. */
    private static void packBRows(float[] b, int first, int ldb, int whole, int kc, int p, float[] packed) {
        for (int jr = 0; jr < whole; jr += NR) {
            int dst = panel(jr, kc) + p * NR;
            for (int r = 0; r < ROWS_TOGETHER; r++) {
                int src = first + r * ldb + jr;
                FloatVector.fromArray(FLOATS, b, src).intoArray(packed, dst + r * NR);
                FloatVector.fromArray(FLOATS, b, src + LANES).intoArray(packed, dst + r * NR + LANES);
            }
        }
    }

    /** {@link #packBRows(float[], int, int, int, int, int, float[])} from any other segment. */
    private static void packBRows(MemorySegment b, long first, int ldb, int whole, int kc, int p, float[] packed) {
        for (int jr = 0; jr < whole; jr += NR) {
            int dst = panel(jr, kc) + p * NR;
            for (int r = 0; r < ROWS_TOGETHER; r++) {
                long src = (first + (long) r * ldb + jr) * Float.BYTES;
                FloatVector.fromMemorySegment(FLOATS, b, src, ORDER).intoArray(packed, dst + r * NR);
                FloatVector.fromMemorySegment(FLOATS, b, src + LANES * Float.BYTES, ORDER)
                        .intoArray(packed, dst + r * NR + LANES);
            }
        }
    }

    /**
     * Row {@code p} of the panel's columns {@code [from, nc)}, which start at {@code row[first]}, spread over their
     * micro-panels; {@code from} is a multiple of NR.
     */
    private static void packBRow(float[] row, int first, int from, int nc, int kc, int p, float[] packed) {
        int whole = nc - nc % NR;
        for (int jr = from; jr < whole; jr += NR) {
            int dst = panel(jr, kc) + p * NR;
            FloatVector.fromArray(FLOATS, row, first + jr - from).intoArray(packed, dst);
            FloatVector.fromArray(FLOATS, row, first + jr - from + LANES).intoArray(packed, dst + LANES);
        }
        if (whole < nc) {
            int dst = panel(whole, kc) + p * NR;
            for (int j = 0; j < NR; j++) {
                packed[dst + j] = whole + j < nc ? row[first + whole - from + j] : 0f;
            }
        }
    }

    /**
     * {@link #packB} for a transposed B, where each column of the panel is a stored row of B. With 8 lanes, whole
     * micro-panels are transposed 8×8 at a time in registers, straight from B, reading 8 of its rows together. Other
     * widths, and a micro-panel cut short by the matrix's edge, copy B's rows into an array and gather each k's values
     * from there. Transposing in registers avoids the gather's cost, and reading rows together keeps several streams of
     * B in flight where copying them one at a time would leave most of the bandwidth unused.
     */
    private static void packTransposedB(
            Product o, Product.ArrayOperands arrays, int pc, int kc, int jc, int nc, Staging w, float[] packed) {
        MemorySegment b = o.b().data();
        long bOffset = o.b().offset();
        int ldb = o.b().ld();
        int whole = LANES == TRANSPOSED_LANES ? nc - nc % NR : 0;
        int blocks = kc - kc % LANES;
        for (int jr = 0; jr < whole; jr += NR) {
            long rows = bOffset + (long) (jc + jr) * ldb + pc;
            int dst = panel(jr, kc);
            for (int half = 0; half < NR; half += LANES) {
                long first = rows + (long) half * ldb;
                if (arrays.b() != null) {
                    int index = arrays.bFirst() + Math.toIntExact(first - bOffset);
                    transpose8(arrays.b(), index, ldb, blocks, packed, dst + half);
                } else {
                    transpose8(b, first, ldb, blocks, packed, dst + half);
                }
            }
            for (int p = blocks; p < kc; p++) {
                for (int j = 0; j < NR; j++) {
                    packed[dst + p * NR + j] = b.getAtIndex(FLOAT, rows + (long) j * ldb + p);
                }
            }
        }
        for (int lane = 0; lane < LANES; lane++) {
            w.stagedOffsets[lane] = lane * kc;
        }
        for (int jr = whole; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            Rows.copy(b, bOffset + (long) (jc + jr) * ldb + pc, ldb, nr, kc, w.stagedB);
            Arrays.fill(w.stagedB, nr * kc, NR * kc, 0f);
            gatherTransposedPanel(w.stagedB, w.stagedOffsets, kc, packed, panel(jr, kc));
        }
    }

    /** A whole micro-panel of a transposed B copied into an array, its NR rows {@code kc} floats apart. */
    private static void gatherTransposedPanel(float[] b, int[] rowOffsets, int kc, float[] packed, int dst) {
        int second = LANES * kc;
        for (int p = 0; p < kc; p++) {
            FloatVector.fromArray(FLOATS, b, p, rowOffsets, 0).intoArray(packed, dst + p * NR);
            FloatVector.fromArray(FLOATS, b, second + p, rowOffsets, 0).intoArray(packed, dst + p * NR + LANES);
        }
    }

    /**
     * Transposes {@code length} columns of 8 rows of {@code b}, {@code ld} apart from {@code first}, into vectors of 8
     * stored {@link MicroKernel#NR} apart from {@code dst}, an 8×8 block at a time: three butterfly stages, each exchanging the
     * off-diagonal halves of the 2×2, 4×4 and 8×8 blocks between rows {@code s} = 1, 2, 4 apart with a lane permutation
     * and a blend. The last stage works on the stored halves: split this way, every part is small enough for the JIT
     * to inline into the loop, which then loads the permutations and masks once.
     */
    private static void transpose8(float[] b, int first, int ld, int length, float[] packed, int dst) {
        for (int p = 0; p < length; p += LANES) {
            int at = dst + p * NR;
            for (int half = 0; half < 8; half += 4) {
                int row = first + half * ld + p;
                transpose4(
                        FloatVector.fromArray(FLOATS, b, row),
                        FloatVector.fromArray(FLOATS, b, row + ld),
                        FloatVector.fromArray(FLOATS, b, row + 2 * ld),
                        FloatVector.fromArray(FLOATS, b, row + 3 * ld),
                        packed,
                        at + half * NR);
            }
            exchangeHalves(packed, at);
        }
    }

    /** {@link #transpose8(float[], int, int, int, float[], int)} from any other segment. */
    private static void transpose8(MemorySegment b, long first, int ld, int length, float[] packed, int dst) {
        for (int p = 0; p < length; p += LANES) {
            int at = dst + p * NR;
            for (int half = 0; half < 8; half += 4) {
                long row = (first + (long) half * ld + p) * Float.BYTES;
                long step = (long) ld * Float.BYTES;
                transpose4(
                        FloatVector.fromMemorySegment(FLOATS, b, row, ORDER),
                        FloatVector.fromMemorySegment(FLOATS, b, row + step, ORDER),
                        FloatVector.fromMemorySegment(FLOATS, b, row + 2 * step, ORDER),
                        FloatVector.fromMemorySegment(FLOATS, b, row + 3 * step, ORDER),
                        packed,
                        at + half * NR);
            }
            exchangeHalves(packed, at);
        }
    }

    /** The first two stages of {@link #transpose8} for 4 rows, stored {@link MicroKernel#NR} apart from {@code dst}. */
    private static void transpose4(
            FloatVector r0, FloatVector r1, FloatVector r2, FloatVector r3, float[] packed, int dst) {
        FloatVector s0 = lower(r0, r1, SWAP1, BIT1), s1 = upper(r0, r1, SWAP1, BIT1);
        FloatVector s2 = lower(r2, r3, SWAP1, BIT1), s3 = upper(r2, r3, SWAP1, BIT1);
        lower(s0, s2, SWAP2, BIT2).intoArray(packed, dst);
        lower(s1, s3, SWAP2, BIT2).intoArray(packed, dst + NR);
        upper(s0, s2, SWAP2, BIT2).intoArray(packed, dst + 2 * NR);
        upper(s1, s3, SWAP2, BIT2).intoArray(packed, dst + 3 * NR);
    }

    /** The last stage of {@link #transpose8}: the 4 vectors from {@code at} against the 4 after them. */
    private static void exchangeHalves(float[] packed, int at) {
        for (int q = 0; q < 4; q++) {
            FloatVector x = FloatVector.fromArray(FLOATS, packed, at + q * NR);
            FloatVector y = FloatVector.fromArray(FLOATS, packed, at + (q + 4) * NR);
            lower(x, y, SWAP4, BIT4).intoArray(packed, at + q * NR);
            upper(x, y, SWAP4, BIT4).intoArray(packed, at + (q + 4) * NR);
        }
    }

    /**
     * A stage of the transpose for rows {@code a} and {@code b}, s apart: a's lanes with bit s set ({@code bit}) take
     * b's lanes s below them ({@code swap}).
     */
    private static FloatVector lower(FloatVector a, FloatVector b, VectorShuffle<Float> swap, VectorMask<Float> bit) {
        return a.blend(b.rearrange(swap), bit);
    }

    /** The partner of {@link #lower}: b's lanes with bit s clear take a's lanes s above them. */
    private static FloatVector upper(FloatVector a, FloatVector b, VectorShuffle<Float> swap, VectorMask<Float> bit) {
        return a.rearrange(swap).blend(b, bit);
    }

    /**
     * Packs {@code op(A)[ic:ic+mc, pc:pc+kc]} into MR-high micro-panels ({@code MR} floats per k), zero-padded. An A
     * that is not a float array is first copied, line by line, into one.
     */
    static void packA(
            Product o, Product.ArrayOperands arrays, int ic, int mc, int pc, int kc, Staging w, float[] packed) {
        boolean trans = o.transA();
        // The stored A holds op(A)[ic:ic+mc, pc:pc+kc] as `lines` runs of `length` floats, `ld` apart.
        int lines = trans ? kc : mc;
        int length = trans ? mc : kc;
        long start = o.a().offset() + (trans ? (long) pc * o.a().ld() + ic : (long) ic * o.a().ld() + pc);
        float[] source;
        int first;
        int ld;
        if (arrays.a() != null) {
            source = arrays.a();
            first = arrays.aFirst() + Math.toIntExact(start - o.a().offset());
            ld = o.a().ld();
        } else {
            source = w.stagedA;
            first = 0;
            ld = length;
            Rows.copy(o.a().data(), start, o.a().ld(), lines, length, source);
        }
        for (int ir = 0; ir < mc; ir += MR) {
            int mr = Math.min(MR, mc - ir);
            if (trans) {
                packTransposedAPanel(source, first + ir, ld, mr, kc, packed, ir * kc);
            } else {
                packAPanel(source, first + ir * ld, ld, mr, kc, packed, ir * kc);
            }
        }
    }

    /**
     * One A micro-panel from {@code mr} rows of an array, {@code ld} apart from {@code first}. With 8 lanes and a whole
     * panel, blocks of 8 k are transposed in registers, {@link #transpose8}'s stages on 4 rows.
     */
    private static void packAPanel(float[] a, int first, int ld, int mr, int kc, float[] packed, int dst) {
        int blocks = mr == MR && LANES == TRANSPOSED_LANES ? kc - kc % LANES : 0;
        for (int p = 0; p < blocks; p += LANES) {
            int row = first + p;
            FloatVector r0 = FloatVector.fromArray(FLOATS, a, row);
            FloatVector r1 = FloatVector.fromArray(FLOATS, a, row + ld);
            FloatVector r2 = FloatVector.fromArray(FLOATS, a, row + 2 * ld);
            FloatVector r3 = FloatVector.fromArray(FLOATS, a, row + 3 * ld);
            FloatVector s0 = lower(r0, r1, SWAP1, BIT1), s1 = upper(r0, r1, SWAP1, BIT1);
            FloatVector s2 = lower(r2, r3, SWAP1, BIT1), s3 = upper(r2, r3, SWAP1, BIT1);
            // Each t holds two k: k and k + 4, its four rows in each half.
            FloatVector t0 = lower(s0, s2, SWAP2, BIT2), t1 = lower(s1, s3, SWAP2, BIT2);
            FloatVector t2 = upper(s0, s2, SWAP2, BIT2), t3 = upper(s1, s3, SWAP2, BIT2);
            int at = dst + p * MR;
            lower(t0, t1, SWAP4, BIT4).intoArray(packed, at);
            lower(t2, t3, SWAP4, BIT4).intoArray(packed, at + LANES);
            upper(t0, t1, SWAP4, BIT4).intoArray(packed, at + 2 * LANES);
            upper(t2, t3, SWAP4, BIT4).intoArray(packed, at + 3 * LANES);
        }
        for (int i = 0; i < MR; i++) {
            int row = first + i * ld;
            for (int p = blocks; p < kc; p++) {
                packed[dst + p * MR + i] = i < mr ? a[row + p] : 0f;
            }
        }
    }

    /**
     * One A micro-panel from a transposed A in an array: for each k its MR values are contiguous, {@code ld} apart
     * from one k to the next, and move as one 128-bit vector.
     */
    private static void packTransposedAPanel(float[] a, int first, int ld, int mr, int kc, float[] packed, int dst) {
        if (mr == MR) {
            for (int p = 0; p < kc; p++) {
                FloatVector.fromArray(A_COLUMN, a, first + p * ld).intoArray(packed, dst + p * MR);
            }
            return;
        }
        for (int p = 0; p < kc; p++) {
            for (int i = 0; i < MR; i++) {
                packed[dst + p * MR + i] = i < mr ? a[first + p * ld + i] : 0f;
            }
        }
    }

    /** The lanes whose index has {@code bit} set. */
    private static VectorMask<Float> lanesWith(int bit) {
        long lanes = 0;
        for (int i = 0; i < LANES; i++) {
            if ((i & bit) != 0) {
                lanes |= 1L << i;
            }
        }
        return VectorMask.fromLong(FLOATS, lanes);
    }

    /** Lane i takes lane {@code i ^ bit} (itself where that is past the last lane). */
    private static VectorShuffle<Float> swap(int bit) {
        return VectorShuffle.fromOp(FLOATS, i -> (i ^ bit) < LANES ? i ^ bit : i);
    }
}
