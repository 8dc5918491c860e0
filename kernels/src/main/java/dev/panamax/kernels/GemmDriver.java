package dev.panamax.kernels;

import static dev.panamax.kernels.MicroKernel.MR;
import static dev.panamax.kernels.MicroKernel.NR;
import static dev.panamax.kernels.MicroKernel.panel;
import static dev.panamax.kernels.Simd.FLOAT;

import java.lang.foreign.MemorySegment;

/**
 * The blocked SGEMM behind {@link Gemm}: BLIS-style loops over cache blocks and the task grid that splits them over
 * threads. The packing of A and B is {@link GemmPacking}'s and the register tile {@link MicroKernel}'s, whose class
 * comment is the contract between the two. Arguments arrive checked; offsets and leading dimensions count floats.
 *
 * <p>Loop nest (per task, over its block of C): columns in {@link #NC} panels, depth in {@link #KC} slices (B's {@code
 * KC × NC} panel packed once, sized for L2/L3), rows in {@link #MC} blocks (A's {@code MC × KC} block packed, sized for
 * L2), then {@link MicroKernel#NR}-wide B micro-panels ({@code KC × NR} floats, 64 KiB with 8 lanes: read from L2, like
 * A) against {@link MicroKernel#MR}-high A micro-panels. Each C element is reduced over k in the same order whatever
 * the task split, so results do not depend on the thread count.
 */
final class GemmDriver {
    /**
     * Depth of a packed slice, deep because each slice after the first re-reads and re-writes C, and waiting for C
     * costs more than streaming a longer B micro-panel from L2.
     */
    static final int KC = 1024;
    /** Rows of a packed A block: 256 KiB at KC = 1024, half of a Zen 3 core's L2. */
    static final int MC = 64;
    /** Columns of a packed B panel: 2 MiB at KC = 1024, in the shared L3. */
    static final int NC = 512;
    /** Below this many multiply-adds a call stays on the caller's thread: a hand-off can cost a scheduler slice. */
    static final long PARALLEL_MIN_MACS = 1L << 22;
    /** Cells of the task grid per thread, when the product is large enough to give each its least size. */
    private static final int CELLS_PER_THREAD = 8;
    /** Least width of a cell: wide enough that re-packing A per cell costs little next to the products. */
    private static final int MIN_TASK_COLUMNS = 128;
    /** Least height of a cell: high enough that re-packing B per cell costs little next to the products. */
    private static final int MIN_TASK_ROWS = 128;

    /** The most rows of op(A) that a product with a transposed B computes as one matrix-vector product each. */
    private static final int ROWS_AS_PRODUCTS_OF_VECTORS = 4;

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    private GemmDriver() {}

    /**
     * Per-thread packing buffers, reused by every call on that thread: grown to the largest blocks it has computed, at
     * most an {@link #MC} × {@link #KC} block of A and a {@link #KC} × {@link #NC} panel of B (and their staging), so
     * that a thread that only ever multiplies small matrices keeps small buffers.
     */
    private static final class Workspace {
        float[] packedA = new float[0];
        float[] packedB = new float[0];
        final float[] tile = new float[MR * NR];
        final GemmPacking.Staging staging = new GemmPacking.Staging();
        /** Where {@link #touch} leaves what it read, so that the reads are not dropped as dead code. */
        float touched;

        /**
         * Grows the buffers for blocks of up to {@code mc} rows, {@code kc} deep, against panels of up to {@code nc}
         * columns of {@code o} (0 rows or columns: that operand comes packed already).
         */
        Workspace fit(Product o, Product.ArrayOperands arrays, int mc, int kc, int nc) {
            if (packedA.length < PackedA.floats(mc, kc)) {
                packedA = new float[PackedA.floats(mc, kc)];
            }
            if (packedB.length < PackedB.floats(kc, nc)) {
                packedB = new float[PackedB.floats(kc, nc)];
            }
            staging.fit(o, arrays, mc, kc, nc);
            return this;
        }

        /** Packs {@code op(A)[ic:ic+mc, pc:pc+kc]} into {@link #packedA}, which it returns. */
        float[] packA(Product o, Product.ArrayOperands arrays, int ic, int mc, int pc, int kc) {
            GemmPacking.packA(o, arrays, ic, mc, pc, kc, staging, packedA);
            return packedA;
        }

        /** Packs {@code op(B)[pc:pc+kc, jc:jc+nc]} into {@link #packedB}, which it returns. */
        float[] packB(Product o, Product.ArrayOperands arrays, int pc, int kc, int jc, int nc) {
            GemmPacking.packB(o, arrays, pc, kc, jc, nc, staging, packedB);
            return packedB;
        }
    }

    /** {@code C = alpha·op(A)·op(B) + beta·C}, split across the library's threads when {@code parallel} and large. */
    static void run(Product o, boolean parallel) {
        if (o.m() == 0 || o.n() == 0) {
            return;
        }
        if (o.k() == 0 || o.alpha() == 0f) {
            o.c().scale(o.beta(), o.m(), o.n());
            return;
        }
        if (o.transB() && o.m() > 1 && o.m() <= ROWS_AS_PRODUCTS_OF_VECTORS) {
            // A few rows times a transposed B: one matrix-vector product per row streams B's rows in order, which for
            // so few rows beats packing B's transpose.
            for (int i = 0; i < o.m(); i++) {
                run(o.row(i), parallel);
            }
            return;
        }
        if (o.m() == 1) {
            // A row vector times op(B) is Cᵀ = op(B)ᵀ·op(A)ᵀ: a matrix-vector product over B, x a row of op(A).
            matrixVector(o, !o.transB(), o.n(), o.b(), o.a(), o.transA() ? o.a().ld() : 1, 1, parallel);
            return;
        }
        if (o.n() == 1) {
            // op(A) times a column vector of op(B), written down a column of C.
            matrixVector(o, o.transA(), o.m(), o.a(), o.b(), o.transB() ? 1 : o.b().ld(), o.c().ld(), parallel);
            return;
        }
        int threads = parallel && (long) o.m() * o.n() * o.k() >= PARALLEL_MIN_MACS ? Parallelism.threads() : 1;
        if (threads == 1) {
            block(o, 0, o.m(), 0, o.n());
            return;
        }
        // A grid of cells taken from a shared counter, several per thread, so that a thread that loses its core for a
        // while leaves only small cells for the others to finish, and no thread waits on a fixed share. Cells are
        // square where the product allows: each column of cells packs its own copy of A and each row of cells its own
        // copy of B, and a square cell repeats the least packing for its area.
        double side = Math.sqrt((double) o.m() * o.n() / (CELLS_PER_THREAD * threads));
        int rowStep = roundUp(Math.max(MIN_TASK_ROWS, (int) side), MR);
        int columnStep = roundUp(Math.max(MIN_TASK_COLUMNS, (int) side), NR);
        int rowCells = Math.ceilDiv(o.m(), rowStep);
        int columnCells = Math.ceilDiv(o.n(), columnStep);
        Parallelism.forEach(rowCells * columnCells, task -> {
            int row = task / columnCells * rowStep;
            int column = task % columnCells * columnStep;
            block(o, row, row + Math.min(rowStep, o.m() - row), column, column + Math.min(columnStep, o.n() - column));
        });
    }

    /**
     * Product {@code o}, one of whose sides is a vector, as {@code y = alpha·op(M)·x + beta·y}: y is C ({@code length}
     * floats, {@code incY} apart), M the other side's matrix (stored transposed when {@code trans}), x the vector
     * side's k floats, {@code incX} apart.
     */
    private static void matrixVector(
            Product o, boolean trans, int length, Matrix matrix, Matrix x, int incX, int incY, boolean parallel) {
        Gemv.run(
                trans,
                trans ? o.k() : length,
                trans ? length : o.k(),
                o.alpha(),
                matrix,
                new Matrix(x.data(), x.offset(), incX),
                o.beta(),
                new Matrix(o.c().data(), o.c().offset(), incY),
                parallel);
    }

    /**
     * Computes rows {@code [m0, m1)} and columns {@code [n0, n1)} of C on the calling thread. Each block's start moves by
     * the block's own size, so that no start passes {@link Integer#MAX_VALUE} near the end of a large C.
     */
    static void block(Product o, int m0, int m1, int n0, int n1) {
        Product.ArrayOperands arrays = Product.ArrayOperands.of(o);
        Workspace w = WORKSPACE.get().fit(o, arrays, Math.min(MC, m1 - m0), Math.min(KC, o.k()), Math.min(NC, n1 - n0));
        for (int jc = n0; jc < n1; jc += Math.min(NC, n1 - jc)) {
            int nc = Math.min(NC, n1 - jc);
            for (int pc = 0; pc < o.k(); pc += Math.min(KC, o.k() - pc)) {
                int kc = Math.min(KC, o.k() - pc);
                w.packB(o, arrays, pc, kc, jc, nc);
                boolean firstSlice = pc == 0;
                for (int ic = m0; ic < m1; ic += Math.min(MC, m1 - ic)) {
                    int mc = Math.min(MC, m1 - ic);
                    w.packA(o, arrays, ic, mc, pc, kc);
                    macroKernel(o, arrays, w, ic, mc, jc, nc, kc, firstSlice, w.packedA, w.packedB);
                }
            }
        }
    }

    /**
     * Whether {@code run(o, false)} computes this product as a single packed block: one B panel, one A block, no
     * matrix-vector shortcut. Such a product can instead take its A from a {@link PackedA} or its B from a {@link
     * PackedB}, made once for several products that share it, through {@link #runPacked}.
     */
    static boolean singleBlock(Product o) {
        return o.m() > 1
                && o.n() > 1
                && o.k() > 0
                && o.alpha() != 0f
                && !(o.transB() && o.m() <= ROWS_AS_PRODUCTS_OF_VECTORS)
                && o.m() <= MC
                && o.k() <= KC
                && o.n() <= NC;
    }

    /**
     * The {@code op(A)} of a {@link #singleBlock} product, packed once for several products of the same height and
     * depth; what it holds is the packing's business, not its holder's.
     */
    static final class PackedA {
        private float[] panels = new float[0];

        /** The floats a PackedA holds for a product {@code m} high and {@code k} deep. */
        static int floats(int m, int k) {
            return roundUp(m, MR) * k;
        }

        /** Packs the whole {@code op(A)} of a {@link #singleBlock} product, as {@link #run} would. */
        void pack(Product o) {
            int length = floats(o.m(), o.k());
            if (panels.length < length) {
                panels = new float[length];
            }
            Product.ArrayOperands arrays = Product.ArrayOperands.of(o);
            GemmPacking.Staging staging = WORKSPACE.get().staging.fit(o, arrays, o.m(), o.k(), 0);
            GemmPacking.packA(o, arrays, 0, o.m(), 0, o.k(), staging, panels);
        }
    }

    /**
     * The {@code op(B)} of a {@link #singleBlock} product, packed once for several products of the same depth and at
     * most this width (their first columns are its first); what it holds is the packing's business, not its holder's.
     */
    static final class PackedB {
        private float[] panels = new float[0];

        /** The floats a PackedB holds for a product {@code k} deep and {@code n} wide. */
        static int floats(int k, int n) {
            return panel(roundUp(n, NR), k);
        }

        /**
         * Packs the first {@code n} columns of the {@code op(B)} of a {@link #singleBlock} product, as {@link #run}
         * would pack its B were it n wide: n may exceed the product's own width where B has those columns, up to
         * {@link #NC}, the widest panel of a single block.
         */
        void pack(Product o, int n) {
            if (n > NC || o.k() > KC) {
                throw new IllegalArgumentException(
                        "n (" + n + ") must be <= " + NC + " and k (" + o.k() + ") <= " + KC);
            }
            int length = floats(o.k(), n);
            if (panels.length < length) {
                panels = new float[length];
            }
            Product.ArrayOperands arrays = Product.ArrayOperands.of(o);
            GemmPacking.Staging staging = WORKSPACE.get().staging.fit(o, arrays, 0, o.k(), n);
            GemmPacking.packB(o, arrays, 0, o.k(), 0, n, staging, panels);
        }
    }

    /**
     * {@link #run} for a {@link #singleBlock} product with its {@code op(A)}, its {@code op(B)} or both already packed
     * (null: packed here). The arithmetic is run's, bit for bit; only the packing is skipped.
     */
    static void runPacked(Product o, PackedA packedA, PackedB packedB) {
        Product.ArrayOperands arrays = Product.ArrayOperands.of(o);
        Workspace w = WORKSPACE.get().fit(o, arrays, packedA == null ? o.m() : 0, o.k(), packedB == null ? o.n() : 0);
        float[] a = packedA != null ? packedA.panels : w.packA(o, arrays, 0, o.m(), 0, o.k());
        float[] b = packedB != null ? packedB.panels : w.packB(o, arrays, 0, o.k(), 0, o.n());
        macroKernel(o, arrays, w, 0, o.m(), 0, o.n(), o.k(), true, a, b);
    }

    /**
     * The packed A block against the packed B panel: B micro-panels outside (each read from L3 for the first A
     * micro-panel, then from L2 for the others), A micro-panels inside. A method of its own so that the JIT compiles
     * it early and whole rather than as an on-stack replacement of the outer loops. The micro-kernel stays a call (its
     * bytecode is over C2's inlining size), which costs nothing next to its kc steps.
     */
    private static void macroKernel(
            Product o,
            Product.ArrayOperands arrays,
            Workspace w,
            int ic,
            int mc,
            int jc,
            int nc,
            int kc,
            boolean firstSlice,
            float[] packedA,
            float[] packedB) {
        // Tiles that only write C need not wait for it: their stores queue while the next tiles compute.
        boolean readsC = !firstSlice || o.beta() != 0f;
        // When C is an array and a tile's sum is its value (alpha 1, C not read), the micro-kernel stores straight into
        // C, saving the copy through the tile buffer.
        boolean direct = !readsC && o.alpha() == 1f;
        int ldc = o.c().ld();
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            if (readsC) {
                if (arrays.c() != null) {
                    w.touched += touch(arrays.c(), arrays.cFirst() + ic * ldc + jc + jr, mc, nr, ldc);
                } else {
                    w.touched += touch(o.c().data(), o.c().offset() + (long) ic * ldc + jc + jr, mc, nr, ldc);
                }
            }
            for (int ir = 0; ir < mc; ir += MR) {
                int mr = Math.min(MR, mc - ir);
                if (arrays.c() != null) {
                    int at = arrays.cFirst() + (ic + ir) * ldc + jc + jr;
                    if (direct && mr == MR && nr == NR) {
                        MicroKernel.multiply(kc, packedA, ir * kc, packedB, panel(jr, kc), arrays.c(), at, ldc);
                    } else {
                        MicroKernel.multiply(kc, packedA, ir * kc, packedB, panel(jr, kc), w.tile, 0, NR);
                        MicroKernel.storeTile(o, firstSlice, w.tile, mr, nr, arrays.c(), at);
                    }
                } else {
                    MicroKernel.multiply(kc, packedA, ir * kc, packedB, panel(jr, kc), w.tile, 0, NR);
                    MicroKernel.storeTile(
                            o,
                            firstSlice,
                            w.tile,
                            mr,
                            nr,
                            o.c().data(),
                            o.c().offset() + (long) (ic + ir) * ldc + jc + jr);
                }
            }
        }
    }

    /**
     * Reads the first and last float of {@code rows} rows of C, {@code width} floats wide, before the tiles that write
     * them. When C is not in the caches (an output or a gradient of a large model usually is not), the tiles would
     * otherwise meet its misses four rows at a time and wait for each group; loaded together, they overlap.
     * Returns a sum of the values so that the JIT keeps the loads.
     */
    private static float touch(float[] c, int first, int rows, int width, int ldc) {
        float sum = 0f;
        for (int i = 0, at = first; i < rows; i++, at += ldc) {
            sum += c[at] + c[at + width - 1];
        }
        return sum;
    }

    /** {@link #touch(float[], int, int, int, int)} for C in any other segment. */
    private static float touch(MemorySegment c, long first, int rows, int width, int ldc) {
        float sum = 0f;
        for (long i = 0, at = first; i < rows; i++, at += ldc) {
            sum += c.getAtIndex(FLOAT, at) + c.getAtIndex(FLOAT, at + width - 1);
        }
        return sum;
    }

    private static int roundUp(int value, int multiple) {
        return Math.ceilDiv(value, multiple) * multiple;
    }
}
