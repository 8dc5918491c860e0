package dev.panamax.model.backend;

import com.sun.management.OperatingSystemMXBean;
import dev.panamax.kernels.Activation;
import dev.panamax.kernels.Activations;
import dev.panamax.kernels.AdamW;
import dev.panamax.kernels.Attention;
import dev.panamax.kernels.CrossEntropy;
import dev.panamax.kernels.Elementwise;
import dev.panamax.kernels.Embedding;
import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.LayerNorm;
import dev.panamax.kernels.Quantization;
import dev.panamax.kernels.QuantizedMatrix;
import dev.panamax.kernels.QuantizedProduct;
import dev.panamax.kernels.RmsNorm;
import dev.panamax.kernels.Rope;
import dev.panamax.kernels.Softmax;
import dev.panamax.kernels.TensorView;
import dev.panamax.kernels.Transpose;
import dev.panamax.kernels.VectorApi;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.ByteOrder;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The {@link Backend} on Panamax's CPU kernels. Tensors live in native memory of a shared arena (so the kernels' worker
 * threads may use them) that {@link #close()} frees; weights stay where they are, typically a memory-mapped file.
 */
public final class CpuBackend implements Backend {
    @Override
    public String kind() {
        return "cpu";
    }

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Arena arena = Arena.ofShared();

    /** Bytes of the tensors this backend allocated, native or on the heap. */
    private final AtomicLong allocated = new AtomicLong();

    /** A run of ones, grown on demand: column sums of a gradient are a transposed GEMV against it. */
    private MemorySegment ones = MemorySegment.NULL;

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /**
     * A backend on the kernels' thread pool as the process has it. The thread count is not a backend's to set: the pool
     * is process-wide ({@code dev.panamax.kernels.Parallelism}), shared by every backend and every direct kernel call,
     * so a constructor that resized it would change them all behind their callers' backs. The application owns it
     * (the {@code panamax} command line sets it once, from {@code --threads}); results do not depend on it.
     */
    public CpuBackend() {}

    /** A matrix at {@code offset} (in floats) of a segment, rows {@code ld} floats apart. */
    private record CpuTensor(MemorySegment data, long offset, int rows, int cols, int ld) implements Tensor {
        @Override
        public Tensor rows(int from, int count) {
            Objects.checkFromIndexSize(from, count, rows);
            return new CpuTensor(data, offset + (long) from * ld, count, cols, ld);
        }

        @Override
        public Tensor columns(int from, int count) {
            Objects.checkFromIndexSize(from, count, cols);
            return new CpuTensor(data, offset + from, rows, count, ld);
        }

        boolean dense() {
            return ld == cols || rows <= 1;
        }

        long size() {
            return (long) rows * cols;
        }
    }

    /** A matrix in a block format, used in place; rows views move its byte offset. */
    private record CpuQuantized(QuantizedMatrix matrix) implements Tensor {
        @Override
        public int rows() {
            return matrix.rows();
        }

        @Override
        public int cols() {
            return matrix.columns();
        }

        @Override
        public Tensor rows(int from, int count) {
            Objects.checkFromIndexSize(from, count, matrix.rows());
            return new CpuQuantized(new QuantizedMatrix(
                    matrix.format(),
                    matrix.data(),
                    matrix.byteOffset() + from * matrix.rowBytes(),
                    count,
                    matrix.columns()));
        }

        @Override
        public Tensor columns(int from, int count) {
            throw new UnsupportedOperationException(
                    "a " + matrix.format() + " matrix has no column views (its rows are blocks)");
        }
    }

    private record CpuRotary(Rope rope) implements Rotary {}

    /**
     * Checks against physical memory (the container's limit where there is one) less what this backend already holds:
     * native tensors and heap training state alike, since the heap is physical memory too.
     */
    @Override
    public void requireMemory(String purpose, long bytes) {
        long available = Math.max(0, physicalMemory() - allocated.get());
        if (bytes > available) {
            throw new InsufficientMemoryException(
                    purpose, bytes, available, "memory (physical memory less what this backend holds)");
        }
    }

    /**
     * Returns the bytes of the tensors this backend has allocated so far (weights used in place not included).
     *
     * @return the bytes
     */
    public long allocatedBytes() {
        return allocated.get();
    }

    /** Physical memory as the JVM sees it (container-aware), or no bound where the platform does not say. */
    private static long physicalMemory() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof OperatingSystemMXBean os) {
            return os.getTotalMemorySize();
        }
        return Long.MAX_VALUE;
    }

    @Override
    public Tensor allocate(int rows, int cols) {
        TensorChecks.shape(rows, cols);
        long bytes = (long) rows * cols * Float.BYTES;
        MemorySegment data = arena.allocate(bytes, 64);
        allocated.addAndGet(bytes);
        return new CpuTensor(data, 0, rows, cols, cols);
    }

    /**
     * A {@code float[]} when the matrix fits in one, else native memory: the kernels work on arrays in place but copy
     * native memory through a per-thread buffer span by span, and AdamW streams four such tensors per step.
     */
    @Override
    public Tensor allocateTrainingState(int rows, int cols) {
        TensorChecks.shape(rows, cols);
        long size = (long) rows * cols;
        if (size > MAX_ARRAY_FLOATS) {
            return allocate(rows, cols);
        }
        float[] array;
        try {
            array = new float[(int) size];
        } catch (OutOfMemoryError heapTooSmall) {
            // A Java heap sized for inference (-Xmx) need not hold a model's training state; native memory still works.
            return allocate(rows, cols);
        }
        allocated.addAndGet(size * Float.BYTES);
        return new CpuTensor(MemorySegment.ofArray(array), 0, rows, cols, cols);
    }

    @Override
    public Tensor weights(MemorySegment floats, int rows, int cols) {
        TensorChecks.weights(floats, rows, cols);
        return new CpuTensor(floats, 0, rows, cols, cols);
    }

    @Override
    public Tensor weights(QuantizedMatrix matrix) {
        return new CpuQuantized(Objects.requireNonNull(matrix, "matrix"));
    }

    /** The largest {@code float[]} a JVM reliably allocates (a few header words below {@code Integer.MAX_VALUE}). */
    private static final long MAX_ARRAY_FLOATS = Integer.MAX_VALUE - 8;

    @Override
    public Rotary rotary(int headDim, int maxPositions, double theta) {
        // Rope keeps a cosine and a sine per position and element, on the heap.
        MemorySize.requireHeap(
                "RoPE tables for " + maxPositions + " positions",
                new MemorySize().add(2L * maxPositions, headDim).bytes());
        return new CpuRotary(new Rope(headDim, maxPositions, theta, Rope.Pairing.ADJACENT));
    }

    @Override
    public void matmul(Tensor x, Tensor w, Layout layout, Tensor bias, Tensor y) {
        if (w instanceof CpuQuantized(QuantizedMatrix q)) {
            quantizedMatmul(cpu("x", x), q, layout, bias, cpu("y", y));
            return;
        }
        CpuTensor a = cpu("x", x);
        CpuTensor b = cpu("w", w);
        CpuTensor c = cpu("y", y);
        boolean outIn = layout == Layout.OUT_IN;
        TensorChecks.Widths widths = TensorChecks.matmul(a, b, layout, c);
        int in = widths.in();
        int out = widths.out();
        float beta = 0;
        if (bias != null) {
            CpuTensor d = cpu("bias", bias);
            TensorChecks.biasRow("bias", d, out);
            for (int i = 0; i < c.rows; i++) {
                MemorySegment.copy(
                        d.data,
                        d.offset * Float.BYTES,
                        c.data,
                        (c.offset + (long) i * c.ld) * Float.BYTES,
                        (long) out * Float.BYTES);
            }
            beta = 1;
        }
        Gemm.sgemm(
                Transpose.NO_TRANSPOSE,
                outIn ? Transpose.TRANSPOSE : Transpose.NO_TRANSPOSE,
                a.rows,
                out,
                in,
                1f,
                a.data,
                a.offset,
                a.ld,
                b.data,
                b.offset,
                b.ld,
                beta,
                c.data,
                c.offset,
                c.ld);
    }

    private static void quantizedMatmul(CpuTensor x, QuantizedMatrix w, Layout layout, Tensor bias, CpuTensor y) {
        TensorChecks.quantizedMatmul(x, w.format(), w.rows(), w.columns(), layout, bias, y);
        QuantizedProduct.multiply(w, x.rows, x.data, x.offset, x.ld, y.data, y.offset, y.ld);
    }

    @Override
    public void matmulBackward(
            Tensor x, Tensor w, Layout layout, Tensor dy, Tensor dx, boolean accumulate, Tensor dw, Tensor dbias) {
        CpuTensor a = cpu("x", x);
        CpuTensor b = cpu("w", w);
        CpuTensor g = cpu("dy", dy);
        CpuTensor gw = cpu("dw", dw);
        boolean outIn = layout == Layout.OUT_IN;
        TensorChecks.Widths widths = TensorChecks.matmulBackward(a, b, layout, g, gw);
        int in = widths.in();
        int out = widths.out();
        int m = a.rows;
        if (dx != null) {
            CpuTensor gx = cpu("dx", dx);
            TensorChecks.sameShape("dx", gx, "x", a);
            // dx = dy·W for W [out, in]; dy·Wᵀ for W [in, out].
            Gemm.sgemm(
                    Transpose.NO_TRANSPOSE,
                    outIn ? Transpose.NO_TRANSPOSE : Transpose.TRANSPOSE,
                    m,
                    in,
                    out,
                    1f,
                    g.data,
                    g.offset,
                    g.ld,
                    b.data,
                    b.offset,
                    b.ld,
                    accumulate ? 1f : 0f,
                    gx.data,
                    gx.offset,
                    gx.ld);
        }
        // dW += dyᵀ·x for W [out, in]; xᵀ·dy for W [in, out].
        CpuTensor left = outIn ? g : a;
        CpuTensor right = outIn ? a : g;
        Gemm.sgemm(
                Transpose.TRANSPOSE,
                Transpose.NO_TRANSPOSE,
                gw.rows,
                gw.cols,
                m,
                1f,
                left.data,
                left.offset,
                left.ld,
                right.data,
                right.offset,
                right.ld,
                1f,
                gw.data,
                gw.offset,
                gw.ld);
        if (dbias != null) {
            CpuTensor gb = cpu("dbias", dbias);
            TensorChecks.biasRow("dbias", gb, out);
            Gemm.sgemv(Transpose.TRANSPOSE, m, out, 1f, g.data, g.offset, g.ld, ones(m), 0, 1f, gb.data, gb.offset);
        }
    }

    private MemorySegment ones(int count) {
        if (ones.byteSize() < (long) count * Float.BYTES) {
            ones = arena.allocate((long) count * Float.BYTES, 64);
            allocated.addAndGet(ones.byteSize());
            ones.fill((byte) 0);
            for (int i = 0; i < count; i++) {
                ones.setAtIndex(FLOAT, i, 1f);
            }
        }
        return ones;
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float epsilon, Tensor y, Tensor rstd) {
        CpuTensor in = cpu("x", x);
        CpuTensor w = cpu("weight", weight);
        CpuTensor out = cpu("y", y);
        TensorChecks.sameShape("y", out, "x", in);
        TensorChecks.same("weight.cols", w.cols, "x.cols", in.cols);
        CpuTensor r = rstd == null ? null : rowStatistic("rstd", rstd, in.rows);
        RmsNorm.forward(
                in.rows,
                in.cols,
                epsilon,
                in.data,
                in.offset,
                in.ld,
                w.data,
                w.offset,
                out.data,
                out.offset,
                out.ld,
                r == null ? null : r.data,
                r == null ? 0 : r.offset);
    }

    @Override
    public void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dweight) {
        CpuTensor in = cpu("x", x);
        CpuTensor w = cpu("weight", weight);
        CpuTensor r = rowStatistic("rstd", rstd, in.rows);
        CpuTensor g = cpu("dy", dy);
        CpuTensor dIn = cpu("dx", dx);
        CpuTensor dw = cpu("dweight", dweight);
        TensorChecks.normBackward(in, w, g, dIn, dw);
        RmsNorm.backward(
                in.rows,
                in.cols,
                in.data,
                in.offset,
                in.ld,
                w.data,
                w.offset,
                r.data,
                r.offset,
                g.data,
                g.offset,
                g.ld,
                dIn.data,
                dIn.offset,
                dIn.ld,
                dw.data,
                dw.offset);
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, float epsilon, Tensor y, Tensor mean, Tensor rstd) {
        CpuTensor in = cpu("x", x);
        CpuTensor w = cpu("weight", weight);
        CpuTensor b = cpu("bias", bias);
        CpuTensor out = cpu("y", y);
        TensorChecks.sameShape("y", out, "x", in);
        TensorChecks.same("weight.cols", w.cols, "x.cols", in.cols);
        TensorChecks.same("bias.cols", b.cols, "x.cols", in.cols);
        CpuTensor mu = mean == null ? null : rowStatistic("mean", mean, in.rows);
        CpuTensor r = rstd == null ? null : rowStatistic("rstd", rstd, in.rows);
        LayerNorm.forward(
                in.rows,
                in.cols,
                epsilon,
                in.data,
                in.offset,
                in.ld,
                w.data,
                w.offset,
                b.data,
                b.offset,
                out.data,
                out.offset,
                out.ld,
                mu == null ? null : mu.data,
                mu == null ? 0 : mu.offset,
                r == null ? null : r.data,
                r == null ? 0 : r.offset);
    }

    @Override
    public void layerNormBackward(
            Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dweight, Tensor dbias) {
        CpuTensor in = cpu("x", x);
        CpuTensor w = cpu("weight", weight);
        CpuTensor mu = rowStatistic("mean", mean, in.rows);
        CpuTensor r = rowStatistic("rstd", rstd, in.rows);
        CpuTensor g = cpu("dy", dy);
        CpuTensor dIn = cpu("dx", dx);
        CpuTensor dw = cpu("dweight", dweight);
        CpuTensor db = cpu("dbias", dbias);
        TensorChecks.normBackward(in, w, g, dIn, dw);
        TensorChecks.sameShape("dbias", db, "weight", w);
        LayerNorm.backward(
                in.rows,
                in.cols,
                in.data,
                in.offset,
                in.ld,
                w.data,
                w.offset,
                mu.data,
                mu.offset,
                r.data,
                r.offset,
                g.data,
                g.offset,
                g.ld,
                dIn.data,
                dIn.offset,
                dIn.ld,
                dw.data,
                dw.offset,
                db.data,
                db.offset);
    }

    /** A per-row statistic: one dense column of {@code rows} floats. */
    private static CpuTensor rowStatistic(String name, Tensor tensor, int rows) {
        CpuTensor t = cpu(name, tensor);
        if (t.rows != rows || t.cols != 1 || !t.dense()) {
            throw new IllegalArgumentException(name + " (" + t.rows + " × " + t.cols + ", row stride " + t.ld
                    + ") must be a dense " + rows + " × 1 column, one value per row of x");
        }
        return t;
    }

    @Override
    public void rope(Rotary rotary, Tensor x, int heads, int position) {
        Rope rope = rope(rotary);
        CpuTensor t = cpu("x", x);
        TensorChecks.same("x.cols", t.cols, "heads × headDim", heads * rope.headDim());
        rope.forward(t.rows, heads, position, t.data, t.offset, t.ld, t.data, t.offset, t.ld);
    }

    @Override
    public void ropeBackward(Rotary rotary, Tensor dx, int heads, int position) {
        Rope rope = rope(rotary);
        CpuTensor t = cpu("dx", dx);
        TensorChecks.same("dx.cols", t.cols, "heads × headDim", heads * rope.headDim());
        rope.backward(t.rows, heads, position, t.data, t.offset, t.ld, t.data, t.offset, t.ld);
    }

    private static Rope rope(Rotary rotary) {
        if (!(rotary instanceof CpuRotary(Rope rope))) {
            throw new IllegalArgumentException("rotary (" + rotary + ") must come from this backend");
        }
        return rope;
    }

    @Override
    public void attention(
            Tensor q,
            Tensor keys,
            Tensor values,
            int heads,
            int kvHeads,
            int sequences,
            int position,
            Tensor out,
            Tensor lse) {
        CpuTensor query = cpu("q", q);
        CpuTensor k = cpu("keys", keys);
        CpuTensor v = cpu("values", values);
        CpuTensor o = cpu("out", out);
        TensorChecks.AttentionLayout a = TensorChecks.attention(query, k, v, heads, kvHeads, sequences, position, o);
        int tk = position + a.queries();
        TensorView lseView = null;
        if (lse != null) {
            CpuTensor l = cpu("lse", lse);
            TensorChecks.same("lse.rows", l.rows, "q.rows", query.rows);
            TensorChecks.same("lse.cols", l.cols, "heads", heads);
            lseView = view(l, a.queries(), 1);
        }
        Attention.Shape shape = new Attention.Shape(sequences, heads, kvHeads, a.queries(), tk, a.headDim());
        Attention.forward(
                shape,
                shape.defaultScale(),
                true,
                view(query, a.queries(), a.headDim()),
                view(k, a.keys(), a.headDim()),
                view(v, a.keys(), a.headDim()),
                null,
                view(o, a.queries(), a.headDim()),
                lseView);
    }

    @Override
    public void attentionBackward(
            Tensor q,
            Tensor keys,
            Tensor values,
            Tensor out,
            Tensor lse,
            Tensor dout,
            int heads,
            int kvHeads,
            int sequences,
            Tensor dq,
            Tensor dk,
            Tensor dv) {
        CpuTensor query = cpu("q", q);
        CpuTensor k = cpu("keys", keys);
        CpuTensor v = cpu("values", values);
        CpuTensor o = cpu("out", out);
        CpuTensor l = cpu("lse", lse);
        CpuTensor dO = cpu("dout", dout);
        CpuTensor dQ = cpu("dq", dq);
        CpuTensor dK = cpu("dk", dk);
        CpuTensor dV = cpu("dv", dv);
        TensorChecks.AttentionLayout a =
                TensorChecks.attentionBackward(query, k, v, o, l, dO, heads, kvHeads, sequences, dQ, dK, dV);
        Attention.Shape shape = new Attention.Shape(sequences, heads, kvHeads, a.queries(), a.keys(), a.headDim());
        Attention.backward(
                shape,
                shape.defaultScale(),
                true,
                view(query, a.queries(), a.headDim()),
                view(k, a.keys(), a.headDim()),
                view(v, a.keys(), a.headDim()),
                null,
                view(o, a.queries(), a.headDim()),
                view(l, a.queries(), 1),
                view(dO, a.queries(), a.headDim()),
                view(dQ, a.queries(), a.headDim()),
                view(dK, a.keys(), a.headDim()),
                view(dV, a.keys(), a.headDim()));
    }

    /**
     * A {@code [sequences, heads, rowsPerSequence, width]} view of a matrix whose rows hold the heads side by side and
     * whose sequences follow each other.
     */
    private static TensorView view(CpuTensor t, int rowsPerSequence, int width) {
        return new TensorView(t.data, t.offset, (long) rowsPerSequence * t.ld, width, t.ld);
    }

    @Override
    public void swiglu(Tensor gate, Tensor up, Tensor y) {
        CpuTensor g = cpu("gate", gate);
        CpuTensor u = cpu("up", up);
        CpuTensor out = cpu("y", y);
        TensorChecks.sameShape("up", u, "gate", g);
        TensorChecks.sameShape("y", out, "gate", g);
        dense(g, u, out);
        Activations.swigluForward((int) g.size(), g.data, g.offset, u.data, u.offset, out.data, out.offset);
    }

    @Override
    public void swigluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dgate, Tensor dup) {
        CpuTensor g = cpu("gate", gate);
        CpuTensor u = cpu("up", up);
        CpuTensor d = cpu("dy", dy);
        CpuTensor dg = cpu("dgate", dgate);
        CpuTensor du = cpu("dup", dup);
        TensorChecks.swigluBackward(g, u, d, dg, du);
        dense(g, u, d, dg, du);
        Activations.swigluBackward(
                (int) g.size(),
                g.data,
                g.offset,
                u.data,
                u.offset,
                d.data,
                d.offset,
                dg.data,
                dg.offset,
                du.data,
                du.offset);
    }

    @Override
    public void gelu(Tensor x, Tensor y) {
        CpuTensor in = cpu("x", x);
        CpuTensor out = cpu("y", y);
        TensorChecks.sameShape("y", out, "x", in);
        dense(in, out);
        Activations.forward(Activation.GELU_TANH, (int) in.size(), in.data, in.offset, out.data, out.offset);
    }

    @Override
    public void geluBackward(Tensor x, Tensor dy, Tensor dx) {
        CpuTensor in = cpu("x", x);
        CpuTensor d = cpu("dy", dy);
        CpuTensor out = cpu("dx", dx);
        TensorChecks.sameShape("dy", d, "x", in);
        TensorChecks.sameShape("dx", out, "x", in);
        dense(in, d, out);
        Activations.backward(
                Activation.GELU_TANH, (int) in.size(), in.data, in.offset, d.data, d.offset, out.data, out.offset);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor y) {
        CpuTensor l = cpu("a", a);
        CpuTensor r = cpu("b", b);
        CpuTensor out = cpu("y", y);
        TensorChecks.sameShape("b", r, "a", l);
        TensorChecks.sameShape("y", out, "a", l);
        for (int i = 0; i < l.rows; i++) {
            Elementwise.add(
                    l.cols,
                    l.data,
                    l.offset + (long) i * l.ld,
                    r.data,
                    r.offset + (long) i * r.ld,
                    out.data,
                    out.offset + (long) i * out.ld);
        }
    }

    @Override
    public void embedding(int[] tokens, int offset, Tensor table, Tensor out) {
        if (table instanceof CpuQuantized(QuantizedMatrix q)) {
            CpuTensor o = cpu("out", out);
            TensorChecks.same("out.cols", o.cols, "table.cols", q.columns());
            Objects.checkFromIndexSize(offset, o.rows, tokens.length);
            for (int i = 0; i < o.rows; i++) {
                int token = tokens[offset + i];
                if (token < 0 || token >= q.rows()) {
                    throw new IllegalArgumentException("tokens[" + (offset + i) + "] (" + token
                            + ") must be in [0, table.rows (" + q.rows() + "))");
                }
                Quantization.dequantizeRow(q, token, o.data, o.offset + (long) i * o.ld);
            }
            return;
        }
        CpuTensor t = cpu("table", table);
        CpuTensor o = cpu("out", out);
        TensorChecks.same("out.cols", o.cols, "table.cols", t.cols);
        dense(t);
        Embedding.forward(
                o.rows,
                t.cols,
                t.rows,
                MemorySegment.ofArray(tokens),
                offset,
                t.data,
                t.offset,
                o.data,
                o.offset,
                o.ld);
    }

    @Override
    public void embeddingBackward(int[] tokens, int offset, Tensor dout, Tensor dtable) {
        CpuTensor d = cpu("dout", dout);
        CpuTensor t = cpu("dtable", dtable);
        TensorChecks.same("dout.cols", d.cols, "dtable.cols", t.cols);
        dense(t);
        Embedding.backward(
                d.rows,
                t.cols,
                t.rows,
                MemorySegment.ofArray(tokens),
                offset,
                d.data,
                d.offset,
                d.ld,
                t.data,
                t.offset);
    }

    @Override
    public float crossEntropy(Tensor logits, int[] targets, int offset, Tensor dlogits, float gradientScale) {
        CpuTensor x = cpu("logits", logits);
        CpuTensor d = dlogits == null ? null : cpu("dlogits", dlogits);
        if (d != null) {
            TensorChecks.sameShape("dlogits", d, "logits", x);
        }
        float loss = CrossEntropy.forward(
                x.rows,
                x.cols,
                x.data,
                x.offset,
                x.ld,
                MemorySegment.ofArray(targets),
                offset,
                Integer.MIN_VALUE,
                d == null ? null : d.data,
                d == null ? 0 : d.offset,
                d == null ? x.cols : d.ld);
        if (d != null && gradientScale != 1f) {
            for (int i = 0; i < d.rows; i++) {
                Elementwise.scale(d.cols, gradientScale, d.data, d.offset + (long) i * d.ld);
            }
        }
        return loss;
    }

    @Override
    public int countCorrect(Tensor logits, int[] targets, int offset) {
        CpuTensor x = cpu("logits", logits);
        Objects.checkFromIndexSize(offset, x.rows, targets.length);
        int correct = 0;
        for (int i = 0; i < x.rows; i++) {
            if (argmax(x.rows(i, 1)) == targets[offset + i]) {
                correct++;
            }
        }
        return correct;
    }

    @Override
    public void zero(Tensor tensor) {
        CpuTensor t = cpu("tensor", tensor);
        if (t.ld == t.cols && t.size() <= Integer.MAX_VALUE) {
            Elementwise.zero((int) t.size(), t.data, t.offset);
            return;
        }
        for (int i = 0; i < t.rows; i++) {
            Elementwise.zero(t.cols, t.data, t.offset + (long) i * t.ld);
        }
    }

    @Override
    public double sumOfSquares(Tensor tensor) {
        CpuTensor t = cpu("tensor", tensor);
        dense(t);
        return Elementwise.sumOfSquares((int) t.size(), t.data, t.offset);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep hyper) {
        CpuTensor p = cpu("param", param);
        CpuTensor g = cpu("grad", grad);
        CpuTensor first = cpu("m", m);
        CpuTensor second = cpu("v", v);
        TensorChecks.adamw(p, g, first, second);
        dense(p, g, first, second);
        AdamW.update(
                (int) p.size(),
                hyper.learningRate(),
                hyper.beta1(),
                hyper.beta2(),
                hyper.epsilon(),
                hyper.weightDecay(),
                hyper.step(),
                hyper.gradScale(),
                p.data,
                p.offset,
                g.data,
                g.offset,
                first.data,
                first.offset,
                second.data,
                second.offset);
    }

    @Override
    public void softmax(Tensor x, float temperature) {
        CpuTensor t = cpu("x", x);
        TensorChecks.temperature(temperature);
        Softmax.forward(
                t.rows, t.cols, 1 / temperature, Softmax.UNMASKED, t.data, t.offset, t.ld, t.data, t.offset, t.ld);
    }

    @Override
    public int argmax(Tensor row) {
        CpuTensor t = cpu("row", row);
        TensorChecks.same("row.rows", t.rows, "1", 1);
        if (t.cols < 1) {
            throw new IllegalArgumentException("row.cols (0) must be >= 1");
        }
        int best = 0;
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < t.cols; j++) {
            float value = t.data.getAtIndex(FLOAT, t.offset + j);
            if (value > max) {
                max = value;
                best = j;
            }
        }
        return best;
    }

    @Override
    public void read(Tensor tensor, float[] target) {
        CpuTensor t = cpu("tensor", tensor);
        TensorChecks.hostArray("target", target.length, t);
        for (int i = 0; i < t.rows; i++) {
            MemorySegment.copy(t.data, FLOAT, (t.offset + (long) i * t.ld) * Float.BYTES, target, i * t.cols, t.cols);
        }
    }

    @Override
    public void write(float[] source, Tensor tensor) {
        CpuTensor t = cpu("tensor", tensor);
        TensorChecks.hostArray("source", source.length, t);
        for (int i = 0; i < t.rows; i++) {
            MemorySegment.copy(source, i * t.cols, t.data, FLOAT, (t.offset + (long) i * t.ld) * Float.BYTES, t.cols);
        }
    }

    @Override
    public void close() {
        // A second close does nothing, as on the CUDA backend.
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    private static CpuTensor cpu(String name, Tensor tensor) {
        if (tensor instanceof CpuTensor t) {
            return t;
        }
        throw new IllegalArgumentException(name + " (" + tensor + ") must be a tensor of a CpuBackend");
    }

    /** Elementwise kernels take one run of floats: each operand must have no gaps between its rows. */
    private static void dense(CpuTensor... tensors) {
        for (CpuTensor t : tensors) {
            if (!t.dense()) {
                throw new IllegalArgumentException("tensor of " + t.rows + " × " + t.cols + " with row stride " + t.ld
                        + " must be dense (row stride equal to its columns) for an elementwise operation");
            }
        }
    }
}
