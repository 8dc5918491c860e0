package dev.panamax.kernels;

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
 * The blocked SGEMM behind {@link Gemm}: BLIS-style loops over cache blocks, packing of A and B into contiguous
 * micro-panels, and a register-tiled micro-kernel. Arguments arrive checked; offsets and leading dimensions count
 * floats.
 *
 * <p>Loop nest (per task, over its block of C): columns in {@link #NC} panels, depth in {@link #KC} slices (B's
 * {@code KC × NC} panel packed once, sized for L2/L3), rows in {@link #MC} blocks (A's {@code MC × KC} block packed,
 * sized for L2), then {@link #NR}-wide B micro-panels ({@code KC × NR} floats, 64 KiB with 8 lanes: read from L2, like
 * A) against {@link
 * #MR}-high A micro-panels. Each C element is reduced over k in the same order whatever the task split, so results do
 * not depend on the thread count.
 */
final class GemmDriver {
    /** Rows of the register tile: 4 rows × 2 vectors = 8 accumulators, which fit AVX2's 16 registers with room for B. */
    static final int MR = 4;
    /** Columns of the register tile: two vectors. */
    static final int NR = 2 * LANES;
    /** MR floats: one k step of a packed A micro-panel, moved as one vector when packing a transposed A. */
    private static final VectorSpecies<Float> A_COLUMN = FloatVector.SPECIES_128;
    /**
     * Depth of a packed slice, deep because each slice after the first re-reads and re-writes C, and waiting for C
     * costs more than streaming a longer B micro-panel from L2.
     */
    static final int KC = 1024;
    /** Rows of an untransposed B that {@link #packB} reads together. */
    private static final int ROWS_TOGETHER = 8;
    /** Floats between consecutive packed B micro-panels beyond their own size: one 64-byte cache line. */
    private static final int PANEL_PAD = 16;
    /** Rows of a packed A block: 256 KiB at KC = 1024, half of a Zen 3 core's L2. */
    static final int MC = 64;
    /** Columns of a packed B panel: 2 MiB at KC = 1024, in the shared L3. */
    static final int NC = 512;
    /** Below this many multiply-adds a call stays on the caller's thread: a hand-off can cost a scheduler slice. */
    static final long PARALLEL_MIN_MACS = 1L << 22;
    /** Width of the task grid's cells: wide enough that re-packing A per cell costs little next to the products. */
    private static final int MIN_TASK_COLUMNS = 128;

    private static final int MIN_TASK_ROWS = 64;

    /** The most rows of op(A) that a product with a transposed B computes as one matrix-vector product each. */
    private static final int ROWS_AS_PRODUCTS_OF_VECTORS = 4;

    /** The vector width {@link #transpose8} is written for; other widths gather. */
    private static final int TRANSPOSED_LANES = 8;
    /** For each stage of {@link #transpose8}, {@code s} = 1, 2, 4: the lanes whose index has bit s set. */
    private static final VectorMask<Float> BIT1 = lanesWith(1), BIT2 = lanesWith(2), BIT4 = lanesWith(4);
    /** For each stage: lane i takes lane {@code i ^ s}, which is {@code i - s} where bit s is set, else {@code i + s}. */
    private static final VectorShuffle<Float> SWAP1 = swap(1), SWAP2 = swap(2), SWAP4 = swap(4);

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    private GemmDriver() {}

    /** Per-thread packing buffers, allocated once and reused by every call on that thread. */
    private static final class Workspace {
        final float[] packedA = new float[MC * KC];
        final float[] packedB = new float[panel(NC, KC)];
        final float[] tile = new float[MR * NR];
        /** A block of A copied out of a segment that is not a float array, so that it is packed like an array. */
        final float[] stagedA = new float[MC * KC];
        /** One row of a B panel copied out of such a segment. */
        final float[] stagedRow = new float[NC];
        /** NR rows of a transposed B (kc floats each, zeros past the matrix's edge), copied out to be gathered in L1. */
        final float[] stagedB = new float[NR * KC];
        /** Offsets of LANES consecutive rows of {@link #stagedB}. */
        final int[] stagedOffsets = new int[LANES];
        /** Where {@link #touch} leaves what it read, so that the reads are not dropped as dead code. */
        float touched;
    }

    /** {@code C = alpha·op(A)·op(B) + beta·C}, split across the library's threads when {@code parallel} and large. */
    static void run(Product o, boolean parallel) {
        if (o.m() == 0 || o.n() == 0) {
            return;
        }
        if (o.k() == 0 || o.alpha() == 0f) {
            scale(o.beta(), o.c().data(), o.c().offset(), o.c().ld(), o.m(), o.n());
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
        // A grid of tasks, two per thread so that a thread slowed by another tenant is balanced by the others, and no
        // more, because every cell repeats packing.
        // Every column of cells packs its own copy of A and every row of cells its own copy of B, so the cells are
        // cut across the larger of the two: columns when B (k × n) is the larger, rows when A (m × k) is.
        int target = 2 * threads;
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

    /**
     * Product {@code o}, one of whose sides is a vector, as {@code y = alpha·op(M)·x + beta·y}: y is C ({@code length}
     * floats, {@code incY} apart), M the other side's matrix (stored transposed when {@code trans}), x the vector
     * side's k floats, {@code incX} apart.
     */
    private static void matrixVector(
            Product o, boolean trans, int length, Matrix matrix, Matrix x, long incX, long incY, boolean parallel) {
        Matrix y = o.c();
        Gemv.run(
                trans,
                trans ? o.k() : length,
                trans ? length : o.k(),
                o.alpha(),
                matrix.data(),
                matrix.offset(),
                matrix.ld(),
                x.data(),
                x.offset(),
                incX,
                o.beta(),
                y.data(),
                y.offset(),
                incY,
                parallel);
    }

    /** Computes rows {@code [m0, m1)} and columns {@code [n0, n1)} of C on the calling thread. */
    private static void block(Product o, int m0, int m1, int n0, int n1) {
        Workspace w = WORKSPACE.get();
        Product.ArrayOperands arrays = Product.ArrayOperands.of(o);
        for (int jc = n0; jc < n1; jc += NC) {
            int nc = Math.min(NC, n1 - jc);
            for (int pc = 0; pc < o.k(); pc += KC) {
                int kc = Math.min(KC, o.k() - pc);
                packB(o, arrays, pc, kc, jc, nc, w, w.packedB);
                boolean firstSlice = pc == 0;
                for (int ic = m0; ic < m1; ic += MC) {
                    int mc = Math.min(MC, m1 - ic);
                    packA(o, arrays, ic, mc, pc, kc, w, w.packedA);
                    macroKernel(o, arrays, w, ic, mc, jc, nc, kc, firstSlice, w.packedA, w.packedB);
                }
            }
        }
    }

    /**
     * Whether {@code run(o, false)} computes this product as a single packed block: one B panel, one A block, no
     * matrix-vector shortcut. Such a product can instead take its A from {@link #packA(Product, float[])} or its B
     * from {@link #packB(Product, int, float[])}, made once for several products that share it, through {@link
     * #runPacked}.
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

    /** The floats {@link #packB(Product, int, float[])} fills for a product {@code k} deep and {@code n} wide. */
    static int packedBLength(int k, int n) {
        return panel(roundUp(n, NR), k);
    }

    /**
     * Packs the first {@code n} columns of the {@code op(B)} of a {@link #singleBlock} product into {@code packed}, as
     * {@link #run} would pack its B were it n wide: n may exceed the product's own width where B has those columns,
     * up to {@link #NC} (the packing's staging buffers are that wide).
     */
    static void packB(Product o, int n, float[] packed) {
        if (n > NC || o.k() > KC) {
            throw new IllegalArgumentException("n (" + n + ") must be <= " + NC + " and k (" + o.k() + ") <= " + KC);
        }
        packB(o, Product.ArrayOperands.of(o), 0, o.k(), 0, n, WORKSPACE.get(), packed);
    }

    /** The floats {@link #packA(Product, float[])} fills for a product {@code m} high and {@code k} deep. */
    static int packedALength(int m, int k) {
        return roundUp(m, MR) * k;
    }

    /** Packs the whole {@code op(A)} of a {@link #singleBlock} product into {@code packed}, as {@link #run} would. */
    static void packA(Product o, float[] packed) {
        packA(o, Product.ArrayOperands.of(o), 0, o.m(), 0, o.k(), WORKSPACE.get(), packed);
    }

    /**
     * {@link #run} for a {@link #singleBlock} product with its {@code op(A)}, its {@code op(B)} or both already packed
     * (null: packed here): A by {@link #packA(Product, float[])} from a product of the same height and depth, B by
     * {@link #packB(Product, int, float[])} from one of the same depth and at least this width (its first columns are
     * this one's). The arithmetic is run's, bit for bit; only the packing is skipped.
     */
    static void runPacked(Product o, float[] packedA, float[] packedB) {
        Workspace w = WORKSPACE.get();
        Product.ArrayOperands arrays = Product.ArrayOperands.of(o);
        float[] a = packedA;
        if (a == null) {
            a = w.packedA;
            packA(o, arrays, 0, o.m(), 0, o.k(), w, a);
        }
        float[] b = packedB;
        if (b == null) {
            b = w.packedB;
            packB(o, arrays, 0, o.k(), 0, o.n(), w, b);
        }
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
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            if (readsC) {
                if (arrays.c() != null) {
                    w.touched += touch(arrays.c(), arrays.cFirst() + ic * o.c().ld() + jc + jr, mc, nr, o.c().ld());
                } else {
                    w.touched +=
                            touch(o.c().data(), o.c().offset() + (long) ic * o.c().ld() + jc + jr, mc, nr, o.c().ld());
                }
            }
            for (int ir = 0; ir < mc; ir += MR) {
                int mr = Math.min(MR, mc - ir);
                if (arrays.c() != null) {
                    int at = arrays.cFirst() + (ic + ir) * o.c().ld() + jc + jr;
                    if (direct && mr == MR && nr == NR) {
                        microKernel(kc, packedA, ir * kc, packedB, panel(jr, kc), arrays.c(), at, o.c().ld());
                    } else {
                        microKernel(kc, packedA, ir * kc, packedB, panel(jr, kc), w.tile, 0, NR);
                        storeTile(o, firstSlice, w.tile, mr, nr, arrays.c(), at);
                    }
                } else {
                    microKernel(kc, packedA, ir * kc, packedB, panel(jr, kc), w.tile, 0, NR);
                    storeTile(
                            o,
                            firstSlice,
                            w.tile,
                            mr,
                            nr,
                            o.c().data(),
                            o.c().offset() + (long) (ic + ir) * o.c().ld() + jc + jr);
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

    /**
     * Where the B micro-panel of column {@code jr} (a multiple of NR) starts in a packed panel {@code kc} deep. The
     * micro-panels are a cache line more than {@code kc × NR} floats apart: at exactly that, a power of two for the
     * usual depths, the rows {@link #packBRow} writes into every micro-panel at once would all fall into one cache set.
     */
    private static int panel(int jr, int kc) {
        return jr * kc + jr / NR * PANEL_PAD;
    }

    /**
     * Packs {@code op(B)[pc:pc+kc, jc:jc+nc]} for an untransposed B into NR-wide micro-panels, each stored k-major
     * ({@code NR} floats per k), zero-padded to a whole panel so that the micro-kernel never needs an edge case. B is
     * read front to back, {@link #ROWS_TOGETHER} rows at a time: one row at a time is one stream of misses, which
     * leaves most of the memory bandwidth unused.
     */
    private static void packB(
            Product o, Product.ArrayOperands arrays, int pc, int kc, int jc, int nc, Workspace w, float[] packed) {
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
            Product o, Product.ArrayOperands arrays, int pc, int kc, int jc, int nc, Workspace w, float[] packed) {
        int ldb = o.b().ld();
        int whole = LANES == TRANSPOSED_LANES ? nc - nc % NR : 0;
        int blocks = kc - kc % LANES;
        for (int jr = 0; jr < whole; jr += NR) {
            long rows = o.b().offset() + (long) (jc + jr) * ldb + pc;
            int dst = panel(jr, kc);
            for (int half = 0; half < NR; half += LANES) {
                long first = rows + (long) half * ldb;
                if (arrays.b() != null) {
                    int index = arrays.bFirst() + Math.toIntExact(first - o.b().offset());
                    transpose8(arrays.b(), index, ldb, blocks, packed, dst + half);
                } else {
                    transpose8(o.b().data(), first, ldb, blocks, packed, dst + half);
                }
            }
            for (int p = blocks; p < kc; p++) {
                for (int j = 0; j < NR; j++) {
                    packed[dst + p * NR + j] = o.b().data().getAtIndex(FLOAT, rows + (long) j * ldb + p);
                }
            }
        }
        for (int lane = 0; lane < LANES; lane++) {
            w.stagedOffsets[lane] = lane * kc;
        }
        for (int jr = whole; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            Rows.copy(o.b().data(), o.b().offset() + (long) (jc + jr) * ldb + pc, ldb, nr, kc, w.stagedB);
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
     * stored {@link #NR} apart from {@code dst}, an 8×8 block at a time: three butterfly stages, each exchanging the
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

    /** The first two stages of {@link #transpose8} for 4 rows, stored {@link #NR} apart from {@code dst}. */
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
    private static void packA(
            Product o, Product.ArrayOperands arrays, int ic, int mc, int pc, int kc, Workspace w, float[] packed) {
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

    /**
     * The register tile: {@code Σ_p a[p] ⊗ b[p]} over one packed slice, stored as MR rows of NR floats into {@code out}
     * from {@code at}, rows {@code ld} apart. Eight accumulators stay in registers; each k step loads two B vectors and
     * broadcasts four A values.
     */
    private static void microKernel(int kc, float[] a, int aBase, float[] b, int bBase, float[] out, int at, int ld) {
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
    private static void storeTile(Product o, boolean firstSlice, float[] tile, int mr, int nr, float[] c, int at) {
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
    private static void storeTile(
            Product o, boolean firstSlice, float[] tile, int mr, int nr, MemorySegment c, long at) {
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
