package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.LANES;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * What attention's forward and backward share: the tile sizes, each thread's workspace, the caches that pack a query
 * tile (as the A of its products) and a head's key and value tiles (as their B) once per call rather than once per
 * product, and the tile steps both passes take: the score tile, the mask, and rows copied out of a view.
 */
final class AttentionTiles {
    /**
     * Queries per tile: their scores, running maxima and sums, and output accumulators stay in L2. At most 64, the bits
     * of the long in which AttentionForward marks a tile's queries.
     */
    static final int QUERY_TILE = 64;
    /** Keys per tile. */
    static final int KEY_TILE = 128;
    /** The largest head size: each thread's workspace holds a tile of {@link #KEY_TILE} key rows in one array. */
    static final int MAX_HEAD_DIM = Checks.MAX_ARRAY_LENGTH / KEY_TILE;

    static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);
    /**
     * Floats of packed key or value tiles a thread keeps per kind of packing for the head it is on: 2 MiB, 63 tiles
     * (8064 keys) at a head size of 64, 7 at 512. The forward keeps two kinds, the backward three, and the buffers stay
     * with the thread for its next call. Tiles past them are packed again for each product.
     */
    private static final int PACKED_FLOATS = 1 << 19;

    private AttentionTiles() {}

    /** The query tiles of {@code tq} queries, the last one partial; counted without passing {@link Integer#MAX_VALUE}. */
    static int queryTiles(int tq) {
        return Math.ceilDiv(tq, QUERY_TILE);
    }

    /** {@link Attention#workspaceFloats}: see there for what it counts. */
    static long workspaceFloats(Attention.Shape s) {
        int d = s.headDim();
        int tiles = Math.ceilDiv(s.tk(), KEY_TILE);
        long packed = 2
                * (keptFloats(tiles, GemmDriver.PackedB.floats(d, KEY_TILE))
                        + keptFloats(tiles, GemmDriver.PackedB.floats(KEY_TILE, d)));
        long rows = 2L * GemmDriver.PackedA.floats(QUERY_TILE, d) + (long) KEY_TILE * d + d;
        long decoding = s.tq() == 1 ? AttentionRowDecode.partialFloats(s) + (long) s.qHeads() * d : 0;
        return 2L * QUERY_TILE * KEY_TILE + (long) QUERY_TILE * d + 3L * QUERY_TILE + rows + packed + decoding;
    }

    /** How many of a head's {@code tiles} packed tiles of {@code tileFloats} each a thread keeps: see PACKED_FLOATS. */
    private static int keptTiles(int tiles, int tileFloats) {
        return Math.min(tiles, PACKED_FLOATS / tileFloats);
    }

    private static long keptFloats(int tiles, int tileFloats) {
        return (long) keptTiles(tiles, tileFloats) * tileFloats;
    }

    /**
     * The end of the keys that queries {@code [q0, q0 + nq)} see: all of them, or, causal, up to the last query's
     * {@code q0 + nq - 1 + (tk - tq)}, inclusive.
     */
    static int keyEnd(AttentionCall c, int q0, int nq) {
        Attention.Shape s = c.shape();
        return c.causal() ? Math.max(0, Math.min(s.tk(), q0 + nq + s.tk() - s.tq())) : s.tk();
    }

    /**
     * {@link #scores} with each row masked by {@link #maskRow}: the mask added, the keys a row does not see -∞; with
     * {@code hide}, also those the mask hides.
     */
    static void maskedScores(
            Workspace w,
            AttentionCall c,
            int b,
            int head,
            int kvHead,
            int q0,
            int nq,
            int k0,
            int nk,
            int d,
            boolean hide) {
        scores(w, c, b, head, kvHead, q0, nq, k0, nk, d);
        int shift = c.shape().tk() - c.shape().tq();
        for (int i = 0; i < nq; i++) {
            int visible = c.causal() ? q0 + i + shift - k0 + 1 : nk;
            maskRow(w.scores, i * KEY_TILE, nk, c.mask(), b, head, q0 + i, k0, visible, hide);
        }
    }

    /** The score tile {@code scale·Q[q0, q0+nq)·K[k0, k0+nk)ᵀ} into the workspace, rows {@link #KEY_TILE} apart. */
    static void scores(
            Workspace w, AttentionCall c, int b, int head, int kvHead, int q0, int nq, int k0, int nk, int d) {
        float scale = c.scale();
        if (nq == 1) {
            // Decoding: a matrix-vector product over the tile's keys, copied once out of the cache.
            stage(c.q(), b, head, q0, 1, d, w.query);
            stage(c.k(), b, kvHead, k0, nk, d, w.rows);
            int j = 0;
            for (; j + 4 <= nk && d % LANES == 0; j += 4) {
                RowMath.dots4(w.query, 0, w.rows, j * d, d, d, scale, w.scores, j, 1);
            }
            for (; j < nk; j++) {
                w.scores[j] = scale * RowMath.dot(w.query, w.rows, j * d, d);
            }
        } else {
            Product product = new Product(
                    false,
                    true,
                    nq,
                    nk,
                    d,
                    scale,
                    c.q().matrix(b, head, q0),
                    c.k().matrix(b, kvHead, k0),
                    0f,
                    w.scoresTile);
            multiply(product, w.queries, c.number(), b, head, q0, w.packed.keysAcross, k0);
        }
    }

    /**
     * Computes a product on the calling thread, taking its A from {@code rows} (null: none) and its B from {@code
     * tiles} where they have them.
     */
    static void multiply(
            Product product, PackedRows rows, long call, int b, int head, int q0, PackedHead.Tiles tiles, int k0) {
        if (!GemmDriver.singleBlock(product)) {
            GemmDriver.run(product, false);
            return;
        }
        GemmDriver.PackedA packedA = rows == null ? null : rows.of(product, call, b, head, q0);
        GemmDriver.runPacked(product, packedA, tiles.of(product, k0));
    }

    /**
     * Adds the mask to a row of scores and hides the columns from {@code visible} on (the causal limit). With {@code
     * hide}, a -∞ of the mask makes the score -∞ even where it is NaN or +∞ (a K row holding NaN or ∞): the backward
     * has no other way to keep that key from the query. The forward only adds: a NaN sends the query to {@link
     * AttentionExact}, which hides the key, and overflowing finite scores keep the path they took.
     */
    static void maskRow(
            float[] scores,
            int row,
            int nk,
            TensorView mask,
            int b,
            int head,
            int query,
            int k0,
            int visible,
            boolean hide) {
        if (mask != null) {
            long maskRow = mask.row(b, head, query) + k0;
            for (int j = 0; j < nk; j++) {
                float m = mask.data().getAtIndex(FLOAT, maskRow + j);
                scores[row + j] = hide && m == Float.NEGATIVE_INFINITY ? m : scores[row + j] + m;
            }
        }
        Arrays.fill(scores, row + Math.max(0, Math.min(nk, visible)), row + nk, Float.NEGATIVE_INFINITY);
    }

    /** Whether rows {@code [first, first + count)} of one (batch, head) of a view hold no NaN or ∞; stages into buffer. */
    static boolean finiteRows(TensorView view, int b, int head, int first, int count, int width, float[] buffer) {
        for (int r = 0; r < count; r += KEY_TILE) {
            int n = Math.min(KEY_TILE, count - r);
            stage(view, b, head, first + r, n, width, buffer);
            if (!RowMath.allFinite(n * width, buffer, 0)) {
                return false;
            }
        }
        return true;
    }

    /**
     * {@code C = alpha·op(A)·op(B) + beta·C} term by term, leaving out every term whose element of A is 0: the stand-in
     * for a tile product whose B holds NaN or ∞, where A's zeros are the weights (or gradients) of the keys and
     * queries that do not see each other, and 0·NaN would be NaN. Scalar, for such tiles only.
     */
    static void multiplySkippingZeros(Product p) {
        Matrix a = p.a(), b = p.b(), c = p.c();
        c.scale(p.beta(), p.m(), p.n());
        for (int i = 0; i < p.m(); i++) {
            for (int t = 0; t < p.k(); t++) {
                float x = p.transA() ? element(a, t, i) : element(a, i, t);
                if (x == 0) {
                    continue;
                }
                float factor = p.alpha() * x;
                long row = c.offset() + (long) i * c.ld();
                for (int j = 0; j < p.n(); j++) {
                    float y = p.transB() ? element(b, j, t) : element(b, t, j);
                    c.data()
                            .setAtIndex(
                                    FLOAT, row + j, Math.fma(factor, y, c.data().getAtIndex(FLOAT, row + j)));
                }
            }
        }
    }

    private static float element(Matrix m, int row, int column) {
        return m.data().getAtIndex(FLOAT, m.offset() + (long) row * m.ld() + column);
    }

    /**
     * Copies rows {@code [first, first + count)} of one (batch, head) of a view, {@code width} floats each, back to back
     * into an array. The loops below read arrays: vector loads from a shared arena's segment in loops this short are
     * much slower than from an array, and the copy costs little since each key and value is read once anyway.
     */
    static void stage(TensorView view, int b, int head, int first, int count, int width, float[] into) {
        Rows.copy(view.data(), view.row(b, head, first), view.rowStride(), count, width, into);
    }

    /**
     * The key and value tiles of one (batch, key/value head), packed as the B operands of the products that take them,
     * the first time a query tile of this call needs them, then reused by the thread's other query tiles (and, in the
     * backward, query heads) of that head, so that a tile is packed once per call rather than once per query tile.
     * The results are the same bits: only where B's packing happens changes.
     */
    static final class PackedHead {
        /** Keys as the transposed B of {@code Q·Kᵀ}, a tile wide and the head size deep. */
        final Tiles keysAcross = new Tiles(false);
        /** Values as the B of {@code P·V}, a tile deep. */
        final Tiles values = new Tiles(true);
        /** Values as the transposed B of the backward's {@code dO·Vᵀ}. */
        final Tiles valuesAcross = new Tiles(false);
        /** Keys as the B of the backward's {@code dS·K}, a tile deep. */
        final Tiles keys = new Tiles(true);

        private long call = -1;
        private int batch;
        private int kvHead;
        /** Bumped on every move to another head, so that a tile packed for an earlier one is never taken as current. */
        private long generation;
        /** Keys in the head: a tile is packed whole, up to here, whatever part of it a query tile sees. */
        private int tk;

        /** Makes (call, batch, kvHead) the head whose tiles are kept; a new one drops the old tiles. */
        void moveTo(long call, int batch, int kvHead, int tk) {
            if (call == this.call && batch == this.batch && kvHead == this.kvHead) {
                return;
            }
            this.call = call;
            this.batch = batch;
            this.kvHead = kvHead;
            this.tk = tk;
            generation++;
        }

        /** One operand's tiles of the current head, packed on first use. */
        final class Tiles {
            /** Whether the tile runs along the product's depth (k), not its width (n). */
            private final boolean deep;

            private GemmDriver.PackedB[] packed = new GemmDriver.PackedB[0];
            private long[] generations = new long[0];

            Tiles(boolean deep) {
                this.deep = deep;
            }

            /**
             * The packed B of {@code product}, a {@link GemmDriver#singleBlock} product, for the key tile at {@code
             * k0}; null where the product covers only part of a tile along its depth (the packing's depth is the whole tile's), or the
             * tile is past those kept ({@link #PACKED_FLOATS}). Along the width a product may take the tile's first
             * keys.
             */
            GemmDriver.PackedB of(Product product, int k0) {
                int tile = k0 / KEY_TILE;
                int size = Math.min(KEY_TILE, tk - k0);
                if (deep && product.k() != size) {
                    return null;
                }
                int n = deep ? product.n() : size;
                // Counted in whole tiles, as workspaceFloats counts them.
                int tiles = keptTiles(
                        Math.ceilDiv(tk, KEY_TILE),
                        deep
                                ? GemmDriver.PackedB.floats(KEY_TILE, product.n())
                                : GemmDriver.PackedB.floats(product.k(), KEY_TILE));
                if (tile >= tiles) {
                    return null;
                }
                if (tile >= packed.length) {
                    packed = Arrays.copyOf(packed, tiles);
                    generations = Arrays.copyOf(generations, tiles);
                }
                if (generations[tile] != generation) {
                    if (packed[tile] == null) {
                        packed[tile] = new GemmDriver.PackedB();
                    }
                    packed[tile].pack(product, n);
                    generations[tile] = generation;
                }
                return packed[tile];
            }
        }
    }

    /**
     * One tile of rows (queries, or the backward's output gradients) packed as the A of the products of a query tile
     * against each of its key tiles: packed for the first, reused by the others, as {@link PackedHead} does for B.
     */
    static final class PackedRows {
        private long call = -1;
        private int batch;
        private int head;
        private int q0;
        private final GemmDriver.PackedA packed = new GemmDriver.PackedA();

        /** The packed A of {@code product}, a {@link GemmDriver#singleBlock} product over rows q0 of (batch, head). */
        GemmDriver.PackedA of(Product product, long call, int batch, int head, int q0) {
            if (call != this.call || batch != this.batch || head != this.head || q0 != this.q0) {
                packed.pack(product);
                this.call = call;
                this.batch = batch;
                this.head = head;
                this.q0 = q0;
            }
            return packed;
        }
    }

    /** Per-thread tiles, grown to the largest head size seen and reused. */
    static final class Workspace {
        final float[] scores = new float[QUERY_TILE * KEY_TILE];
        /** The scores as a product's operand, rows a key tile apart. */
        final Matrix scoresTile = new Matrix(MemorySegment.ofArray(scores), 0, KEY_TILE);

        final float[] max = new float[QUERY_TILE];
        final float[] sum = new float[QUERY_TILE];
        final float[] gradients = new float[QUERY_TILE * KEY_TILE];
        final Matrix gradientsTile = new Matrix(MemorySegment.ofArray(gradients), 0, KEY_TILE);
        float[] acc = new float[0];
        MemorySegment accSegment = MemorySegment.ofArray(acc);
        /** The backward's row terms {@code D_i = dO_i·O_i} of a query tile. */
        final float[] rowDots = new float[QUERY_TILE];
        /** One query (or output) row and a tile of key or value rows, copied out of their views by {@link #stage}. */
        float[] query = new float[0];

        float[] rows = new float[0];
        private float[] decodeQueries = new float[0];
        final PackedHead packed = new PackedHead();
        /** The query tile as the A of {@code Q·Kᵀ}, and the backward's output-gradient tile as the A of {@code dO·Vᵀ}. */
        final PackedRows queries = new PackedRows();

        final PackedRows outputGradients = new PackedRows();

        void ensure(int headDim) {
            if (acc.length < QUERY_TILE * headDim) {
                acc = new float[QUERY_TILE * headDim];
                accSegment = MemorySegment.ofArray(acc);
                query = new float[headDim];
                rows = new float[KEY_TILE * headDim];
            }
        }

        /** Every head's query row, back to back, for {@link AttentionRowDecode}. */
        float[] decodeQueries(int floats) {
            if (decodeQueries.length < floats) {
                decodeQueries = new float[floats];
            }
            return decodeQueries;
        }
    }
}
