package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.ORDER;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * The blocked SGEMM behind {@link Gemm}: BLIS-style loops over cache blocks, packing of A and B into contiguous
 * micro-panels, and a register-tiled micro-kernel. Arguments arrive checked; offsets and leading dimensions count
 * floats.
 *
 * <p>Loop nest (per task, over its block of C): columns in {@link #NC} panels, depth in {@link #KC} slices (B's
 * {@code KC × NC} panel packed once, sized for L2/L3), rows in {@link #MC} blocks (A's {@code MC × KC} block packed,
 * sized for L2), then {@link #NR}-wide B micro-panels (held in L1) against {@link #MR}-high A micro-panels. Each C
 * element is reduced over k in the same order whatever the task split, so results do not depend on the thread count.
 */
final class GemmDriver {
    /** Rows of the register tile: 4 rows × 2 vectors = 8 accumulators, which fit AVX2's 16 registers with room for B. */
    static final int MR = 4;
    /** Columns of the register tile: two vectors. */
    static final int NR = 2 * LANES;
    /**
     * Depth of a packed slice. Each slice after the first re-reads and re-writes C, and on this class of machine that
     * costs more than streaming a 32 KiB B micro-panel from L2: measured side by side with OpenBLAS, 512 beat 256 on
     * square products of 512 to 1024.
     */
    static final int KC = 512;
    /** Rows of a packed A block: 256 KiB at KC = 512, half of a Zen 3 core's L2. */
    static final int MC = 128;
    /** Columns of a packed B panel: 2 MiB at KC = 512, in the shared L3. */
    static final int NC = 1024;
    /** Below this many multiply-adds a call stays on the caller's thread: a hand-off can cost a scheduler slice. */
    static final long PARALLEL_MIN_MACS = 1L << 22;
    /** Width of the task grid's cells: wide enough that re-packing A per cell costs little next to the products. */
    private static final int MIN_TASK_COLUMNS = 128;

    private static final int MIN_TASK_ROWS = 64;

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    private GemmDriver() {}

    /** Per-thread packing buffers, allocated once and reused by every call on that thread. */
    private static final class Workspace {
        final float[] packedA = new float[MC * KC];
        final float[] packedB = new float[KC * NC];
        final float[] tile = new float[MR * NR];
        /** Offsets of LANES consecutive rows of B, for gathering a transposed B from an array. */
        final int[] rowOffsets = new int[LANES];
        /**
         * NR rows of a transposed B outside the heap, copied here (row after row, kc floats each) so that they can be
         * gathered like an array's: vector gathers read arrays only.
         */
        final float[] staged = new float[NR * KC];
        /** Offsets of LANES consecutive rows of {@link #staged}. */
        final int[] stagedOffsets = new int[LANES];
    }

    /** One product's operands, in float units. */
    record Operands(
            boolean transA,
            boolean transB,
            int m,
            int n,
            int k,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            MemorySegment b,
            long bOffset,
            int ldb,
            float beta,
            MemorySegment c,
            long cOffset,
            int ldc) {}

    /** {@code C = alpha·op(A)·op(B) + beta·C}, split across the library's threads when {@code parallel} and large. */
    static void run(Operands o, boolean parallel) {
        if (o.m() == 0 || o.n() == 0) {
            return;
        }
        if (o.k() == 0 || o.alpha() == 0f) {
            scale(o.beta(), o.c(), o.cOffset(), o.ldc(), o.m(), o.n());
            return;
        }
        if (o.m() == 1) {
            // A row vector times op(B): a matrix-vector product over B.
            long incX = o.transA() ? o.lda() : 1;
            if (o.transB()) {
                Gemv.run(
                        false,
                        o.n(),
                        o.k(),
                        o.alpha(),
                        o.b(),
                        o.bOffset(),
                        o.ldb(),
                        o.a(),
                        o.aOffset(),
                        incX,
                        o.beta(),
                        o.c(),
                        o.cOffset(),
                        1,
                        parallel);
            } else {
                Gemv.run(
                        true,
                        o.k(),
                        o.n(),
                        o.alpha(),
                        o.b(),
                        o.bOffset(),
                        o.ldb(),
                        o.a(),
                        o.aOffset(),
                        incX,
                        o.beta(),
                        o.c(),
                        o.cOffset(),
                        1,
                        parallel);
            }
            return;
        }
        if (o.n() == 1) {
            // op(A) times a column vector of op(B), written down a column of C.
            long incX = o.transB() ? 1 : o.ldb();
            if (o.transA()) {
                Gemv.run(
                        true,
                        o.k(),
                        o.m(),
                        o.alpha(),
                        o.a(),
                        o.aOffset(),
                        o.lda(),
                        o.b(),
                        o.bOffset(),
                        incX,
                        o.beta(),
                        o.c(),
                        o.cOffset(),
                        o.ldc(),
                        parallel);
            } else {
                Gemv.run(
                        false,
                        o.m(),
                        o.k(),
                        o.alpha(),
                        o.a(),
                        o.aOffset(),
                        o.lda(),
                        o.b(),
                        o.bOffset(),
                        incX,
                        o.beta(),
                        o.c(),
                        o.cOffset(),
                        o.ldc(),
                        parallel);
            }
            return;
        }
        int threads = parallel && (long) o.m() * o.n() * o.k() >= PARALLEL_MIN_MACS ? Parallelism.threads() : 1;
        if (threads == 1) {
            block(o, 0, o.m(), 0, o.n());
            return;
        }
        // A grid of tasks, several per thread so that a thread slowed by another tenant is balanced by the others.
        // Every column of cells packs its own copy of A and every row of cells its own copy of B, so the cells are
        // cut across the larger of the two: columns when B (k × n) is the larger, rows when A (m × k) is.
        int target = 4 * threads;
        int columnTasks;
        int rowTasks;
        if (o.n() >= o.m()) {
            columnTasks = clamp(o.n() / MIN_TASK_COLUMNS, 1, target);
            rowTasks = clamp(target / columnTasks, 1, Math.max(1, o.m() / MIN_TASK_ROWS));
        } else {
            rowTasks = clamp(o.m() / MIN_TASK_ROWS, 1, target);
            columnTasks = clamp(target / rowTasks, 1, Math.max(1, o.n() / MIN_TASK_COLUMNS));
        }
        int rowStep = roundUp(ceilDiv(o.m(), rowTasks), MR);
        int columnStep = roundUp(ceilDiv(o.n(), columnTasks), NR);
        int rowCells = ceilDiv(o.m(), rowStep);
        int columnCells = ceilDiv(o.n(), columnStep);
        Parallelism.forEach(rowCells * columnCells, task -> {
            int row = task / columnCells * rowStep;
            int column = task % columnCells * columnStep;
            block(o, row, Math.min(o.m(), row + rowStep), column, Math.min(o.n(), column + columnStep));
        });
    }

    /** Computes rows {@code [m0, m1)} and columns {@code [n0, n1)} of C on the calling thread. */
    private static void block(Operands o, int m0, int m1, int n0, int n1) {
        Workspace w = WORKSPACE.get();
        for (int jc = n0; jc < n1; jc += NC) {
            int nc = Math.min(NC, n1 - jc);
            for (int pc = 0; pc < o.k(); pc += KC) {
                int kc = Math.min(KC, o.k() - pc);
                packB(o, pc, kc, jc, nc, w);
                boolean firstSlice = pc == 0;
                for (int ic = m0; ic < m1; ic += MC) {
                    int mc = Math.min(MC, m1 - ic);
                    packA(o, ic, mc, pc, kc, w.packedA);
                    macroKernel(o, w, ic, mc, jc, nc, kc, firstSlice);
                }
            }
        }
    }

    /**
     * The packed A block against the packed B panel: B micro-panels outside (each stays in L1 while every A
     * micro-panel passes it), A micro-panels inside. A method of its own so that the JIT compiles it early and whole,
     * with the micro-kernel inlined, rather than as an on-stack replacement of the outer loops.
     */
    private static void macroKernel(
            Operands o, Workspace w, int ic, int mc, int jc, int nc, int kc, boolean firstSlice) {
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            for (int ir = 0; ir < mc; ir += MR) {
                microKernel(kc, w.packedA, ir * kc, w.packedB, jr * kc, w.tile);
                storeTile(o, w.tile, ic + ir, Math.min(MR, mc - ir), jc + jr, nr, firstSlice);
            }
        }
    }

    /**
     * Packs {@code op(B)[pc:pc+kc, jc:jc+nc]} into NR-wide micro-panels, each stored k-major ({@code NR} floats per k),
     * zero-padded to a whole panel so that the micro-kernel never needs an edge case.
     */
    private static void packB(Operands o, int pc, int kc, int jc, int nc, Workspace w) {
        if (!o.transB()) {
            for (int jr = 0; jr < nc; jr += NR) {
                packBPanel(o, pc, kc, jc + jr, Math.min(NR, nc - jr), w.packedB, jr * kc);
            }
            return;
        }
        float[] array = o.b().heapBase().orElse(null) instanceof float[] floats ? floats : null;
        for (int lane = 0; lane < LANES; lane++) {
            w.rowOffsets[lane] = lane * o.ldb();
            w.stagedOffsets[lane] = lane * kc;
        }
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            int col = jc + jr;
            if (nr < NR) {
                packBPanel(o, pc, kc, col, nr, w.packedB, jr * kc);
            } else if (array != null) {
                // Element (col, pc) of the stored B, as an index into the array (heap segments count bytes).
                int first = Math.toIntExact(o.b().address() / Float.BYTES + o.bOffset() + (long) col * o.ldb() + pc);
                gatherTransposedPanel(array, w.rowOffsets, first, o.ldb(), kc, w.packedB, jr * kc);
            } else {
                for (int j = 0; j < NR; j++) {
                    long src = (o.bOffset() + (long) (col + j) * o.ldb() + pc) * Float.BYTES;
                    MemorySegment.copy(o.b(), FLOAT, src, w.staged, j * kc, kc);
                }
                gatherTransposedPanel(w.staged, w.stagedOffsets, 0, kc, kc, w.packedB, jr * kc);
            }
        }
    }

    /**
     * A whole micro-panel of a transposed B held in an array, its NR rows {@code ld} floats apart from index {@code
     * first}: for each k the NR values sit in NR different rows, so they are gathered a vector at a time instead of
     * read one by one.
     */
    private static void gatherTransposedPanel(
            float[] b, int[] rowOffsets, int first, int ld, int kc, float[] packed, int dst) {
        int second = first + LANES * ld;
        for (int p = 0; p < kc; p++) {
            FloatVector.fromArray(FLOATS, b, first + p, rowOffsets, 0).intoArray(packed, dst + p * NR);
            FloatVector.fromArray(FLOATS, b, second + p, rowOffsets, 0).intoArray(packed, dst + p * NR + LANES);
        }
    }

    /** One B micro-panel: columns {@code [col, col + nr)} of op(B); small, so the JIT compiles it early and well. */
    private static void packBPanel(Operands o, int pc, int kc, int col, int nr, float[] packed, int dst) {
        MemorySegment b = o.b();
        long ldb = o.ldb();
        if (o.transB()) {
            // op(B)(p, j) = B(j, p): each stored row of B is a column of the panel.
            for (int j = 0; j < NR; j++) {
                long src = o.bOffset() + (col + j) * ldb + pc;
                for (int p = 0; p < kc; p++) {
                    packed[dst + p * NR + j] = j < nr ? b.getAtIndex(FLOAT, src + p) : 0f;
                }
            }
        } else if (nr == NR) {
            long src = (o.bOffset() + pc * ldb + col) * Float.BYTES;
            long step = ldb * Float.BYTES;
            for (int p = 0; p < kc; p++, src += step) {
                FloatVector.fromMemorySegment(FLOATS, b, src, ORDER).intoArray(packed, dst + p * NR);
                FloatVector.fromMemorySegment(FLOATS, b, src + LANES * Float.BYTES, ORDER)
                        .intoArray(packed, dst + p * NR + LANES);
            }
        } else {
            for (int p = 0; p < kc; p++) {
                long src = o.bOffset() + (pc + p) * ldb + col;
                for (int j = 0; j < NR; j++) {
                    packed[dst + p * NR + j] = j < nr ? b.getAtIndex(FLOAT, src + j) : 0f;
                }
            }
        }
    }

    /** Packs {@code op(A)[ic:ic+mc, pc:pc+kc]} into MR-high micro-panels ({@code MR} floats per k), zero-padded. */
    private static void packA(Operands o, int ic, int mc, int pc, int kc, float[] packed) {
        for (int ir = 0; ir < mc; ir += MR) {
            packAPanel(o, ic + ir, Math.min(MR, mc - ir), pc, kc, packed, ir * kc);
        }
    }

    /** One A micro-panel: rows {@code [row, row + mr)} of op(A). */
    private static void packAPanel(Operands o, int row, int mr, int pc, int kc, float[] packed, int dst) {
        MemorySegment a = o.a();
        long lda = o.lda();
        if (o.transA()) {
            // op(A)(i, p) = A(p, i): the panel's MR values for one k are contiguous in A.
            for (int p = 0; p < kc; p++) {
                long src = o.aOffset() + (pc + p) * lda + row;
                for (int i = 0; i < MR; i++) {
                    packed[dst + p * MR + i] = i < mr ? a.getAtIndex(FLOAT, src + i) : 0f;
                }
            }
        } else {
            for (int i = 0; i < MR; i++) {
                long src = o.aOffset() + (row + i) * lda + pc;
                for (int p = 0; p < kc; p++) {
                    packed[dst + p * MR + i] = i < mr ? a.getAtIndex(FLOAT, src + p) : 0f;
                }
            }
        }
    }

    /**
     * The register tile: {@code tile[MR × NR] = Σ_p a[p] ⊗ b[p]} over one packed slice. Eight accumulators stay in
     * registers; each k step loads two B vectors and broadcasts four A values.
     */
    private static void microKernel(int kc, float[] a, int aBase, float[] b, int bBase, float[] tile) {
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
        c00.intoArray(tile, 0);
        c01.intoArray(tile, LANES);
        c10.intoArray(tile, NR);
        c11.intoArray(tile, NR + LANES);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + LANES);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + LANES);
    }

    /**
     * Adds the tile into C: {@code C = alpha·tile + beta·C} for the first depth slice (C is not read when beta is 0),
     * {@code C = alpha·tile + C} after it. Only the {@code mr × nr} valid corner is written.
     */
    private static void storeTile(Operands o, float[] tile, int row0, int mr, int col0, int nr, boolean firstSlice) {
        MemorySegment c = o.c();
        float alpha = o.alpha();
        float beta = firstSlice ? o.beta() : 1f;
        for (int i = 0; i < mr; i++) {
            long rowStart = (o.cOffset() + (long) (row0 + i) * o.ldc() + col0) * Float.BYTES;
            for (int j = 0; j < nr; j += LANES) {
                long at = rowStart + (long) j * Float.BYTES;
                FloatVector product =
                        FloatVector.fromArray(FLOATS, tile, i * NR + j).mul(alpha);
                if (nr - j >= LANES) {
                    if (beta != 0f) {
                        product = product.add(FloatVector.fromMemorySegment(FLOATS, c, at, ORDER)
                                .mul(beta));
                    }
                    product.intoMemorySegment(c, at, ORDER);
                } else {
                    VectorMask<Float> valid = FLOATS.indexInRange(0, nr - j);
                    if (beta != 0f) {
                        product = product.add(FloatVector.fromMemorySegment(FLOATS, c, at, ORDER, valid)
                                .mul(beta));
                    }
                    product.intoMemorySegment(c, at, ORDER, valid);
                }
            }
        }
    }

    /** {@code C = beta·C} over an {@code m × n} block; C is not read when beta is 0, so NaN there does not survive. */
    static void scale(float beta, MemorySegment c, long cOffset, int ldc, int m, int n) {
        if (beta == 1f) {
            return;
        }
        for (int i = 0; i < m; i++) {
            long row = cOffset + (long) i * ldc;
            for (int j = 0; j < n; j++) {
                c.setAtIndex(FLOAT, row + j, beta == 0f ? 0f : beta * c.getAtIndex(FLOAT, row + j));
            }
        }
    }

    private static int clamp(int value, int low, int high) {
        return Math.max(low, Math.min(high, value));
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static int roundUp(int value, int multiple) {
        return ceilDiv(value, multiple) * multiple;
    }
}
