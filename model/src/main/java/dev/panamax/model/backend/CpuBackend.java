package dev.panamax.model.backend;

import dev.panamax.kernels.Activation;
import dev.panamax.kernels.Activations;
import dev.panamax.kernels.Attention;
import dev.panamax.kernels.Elementwise;
import dev.panamax.kernels.Embedding;
import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.LayerNorm;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.RmsNorm;
import dev.panamax.kernels.Rope;
import dev.panamax.kernels.Softmax;
import dev.panamax.kernels.TensorView;
import dev.panamax.kernels.Transpose;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * The {@link Backend} on Panamax's CPU kernels. Tensors live in native memory of a shared arena (so the kernels' worker
 * threads may use them) that {@link #close()} frees; weights stay where they are, typically a memory-mapped file.
 */
public final class CpuBackend implements Backend {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Arena arena = Arena.ofShared();

    /** A backend on the kernels' current number of threads. */
    public CpuBackend() {}

    /**
     * A backend that sets the kernels' number of threads (a process-wide setting; results do not depend on it).
     *
     * @param threads the threads kernels may use, at least 1
     * @throws IllegalArgumentException if {@code threads < 1}
     */
    public CpuBackend(int threads) {
        Parallelism.setThreads(threads);
    }

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

    private record CpuRotary(Rope rope) implements Rotary {}

    @Override
    public Tensor allocate(int rows, int cols) {
        checkShape(rows, cols);
        return new CpuTensor(arena.allocate((long) rows * cols * Float.BYTES, 64), 0, rows, cols, cols);
    }

    @Override
    public Tensor weights(MemorySegment floats, int rows, int cols) {
        checkShape(rows, cols);
        if (floats.byteSize() != (long) rows * cols * Float.BYTES) {
            throw new IllegalArgumentException("floats (" + floats.byteSize() + " bytes) must hold exactly rows ("
                    + rows + ") × cols (" + cols + ") floats");
        }
        return new CpuTensor(floats, 0, rows, cols, cols);
    }

    private static void checkShape(int rows, int cols) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException("rows (" + rows + ") and cols (" + cols + ") must be >= 0");
        }
    }

    @Override
    public Rotary rotary(int headDim, int maxPositions, double theta) {
        return new CpuRotary(new Rope(headDim, maxPositions, theta, Rope.Pairing.ADJACENT));
    }

    @Override
    public void matmul(Tensor x, Tensor w, Layout layout, Tensor bias, Tensor y) {
        CpuTensor a = cpu("x", x);
        CpuTensor b = cpu("w", w);
        CpuTensor c = cpu("y", y);
        boolean outIn = Objects.requireNonNull(layout, "layout") == Layout.OUT_IN;
        int in = outIn ? b.cols : b.rows;
        int out = outIn ? b.rows : b.cols;
        same("x.cols", a.cols, "the weights' input width", in);
        same("y.cols", c.cols, "the weights' output width", out);
        same("y.rows", c.rows, "x.rows", a.rows);
        float beta = 0;
        if (bias != null) {
            CpuTensor d = cpu("bias", bias);
            same("bias.rows", d.rows, "1", 1);
            same("bias.cols", d.cols, "the weights' output width", out);
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

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float epsilon, Tensor y) {
        CpuTensor in = cpu("x", x);
        CpuTensor w = cpu("weight", weight);
        CpuTensor out = cpu("y", y);
        sameShape("y", out, "x", in);
        same("weight.cols", w.cols, "x.cols", in.cols);
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
                null,
                0);
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, float epsilon, Tensor y) {
        CpuTensor in = cpu("x", x);
        CpuTensor w = cpu("weight", weight);
        CpuTensor b = cpu("bias", bias);
        CpuTensor out = cpu("y", y);
        sameShape("y", out, "x", in);
        same("weight.cols", w.cols, "x.cols", in.cols);
        same("bias.cols", b.cols, "x.cols", in.cols);
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
                null,
                0,
                null,
                0);
    }

    @Override
    public void rope(Rotary rotary, Tensor x, int heads, int position) {
        if (!(rotary instanceof CpuRotary(Rope rope))) {
            throw new IllegalArgumentException("rotary (" + rotary + ") must come from this backend");
        }
        CpuTensor t = cpu("x", x);
        same("x.cols", t.cols, "heads × headDim", heads * rope.headDim());
        rope.forward(t.rows, heads, position, t.data, t.offset, t.ld, t.data, t.offset, t.ld);
    }

    @Override
    public void attention(Tensor q, Tensor keys, Tensor values, int heads, int kvHeads, int position, Tensor out) {
        CpuTensor query = cpu("q", q);
        CpuTensor k = cpu("keys", keys);
        CpuTensor v = cpu("values", values);
        CpuTensor o = cpu("out", out);
        sameShape("out", o, "q", query);
        if (heads < 1 || query.cols % heads != 0) {
            throw new IllegalArgumentException(
                    "heads (" + heads + ") must be >= 1 and divide q.cols (" + query.cols + ")");
        }
        int headDim = query.cols / heads;
        int tk = position + query.rows;
        same("keys.cols", k.cols, "kvHeads × headDim", kvHeads * headDim);
        same("values.cols", v.cols, "kvHeads × headDim", kvHeads * headDim);
        if (position < 0 || tk > k.rows || tk > v.rows) {
            throw new IllegalArgumentException("position (" + position + ") + q.rows (" + query.rows
                    + ") must be in [0, rows of keys (" + k.rows + ") and values (" + v.rows + ")]");
        }
        Attention.forward(
                new Attention.Shape(1, heads, kvHeads, query.rows, tk, headDim),
                true,
                view(query, headDim),
                view(k, headDim),
                view(v, headDim),
                view(o, headDim));
    }

    /** A {@code [1, heads, rows, headDim]} view of a matrix whose rows hold the heads side by side. */
    private static TensorView view(CpuTensor t, int headDim) {
        return new TensorView(t.data, t.offset, (long) t.rows * t.ld, headDim, t.ld);
    }

    @Override
    public void swiglu(Tensor gate, Tensor up, Tensor y) {
        CpuTensor g = cpu("gate", gate);
        CpuTensor u = cpu("up", up);
        CpuTensor out = cpu("y", y);
        sameShape("up", u, "gate", g);
        sameShape("y", out, "gate", g);
        dense(g, u, out);
        Activations.swigluForward((int) g.size(), g.data, g.offset, u.data, u.offset, out.data, out.offset);
    }

    @Override
    public void gelu(Tensor x, Tensor y) {
        CpuTensor in = cpu("x", x);
        CpuTensor out = cpu("y", y);
        sameShape("y", out, "x", in);
        dense(in, out);
        Activations.forward(Activation.GELU_TANH, (int) in.size(), in.data, in.offset, out.data, out.offset);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor y) {
        CpuTensor l = cpu("a", a);
        CpuTensor r = cpu("b", b);
        CpuTensor out = cpu("y", y);
        sameShape("b", r, "a", l);
        sameShape("y", out, "a", l);
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
        CpuTensor t = cpu("table", table);
        CpuTensor o = cpu("out", out);
        same("out.cols", o.cols, "table.cols", t.cols);
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
    public void softmax(Tensor x, float temperature) {
        CpuTensor t = cpu("x", x);
        if (!(temperature > 0) || !Float.isFinite(temperature)) {
            throw new IllegalArgumentException("temperature (" + temperature + ") must be finite and > 0");
        }
        Softmax.forward(
                t.rows, t.cols, 1 / temperature, Softmax.UNMASKED, t.data, t.offset, t.ld, t.data, t.offset, t.ld);
    }

    @Override
    public int argmax(Tensor row) {
        CpuTensor t = cpu("row", row);
        same("row.rows", t.rows, "1", 1);
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
        hostArray("target", target.length, t);
        for (int i = 0; i < t.rows; i++) {
            MemorySegment.copy(t.data, FLOAT, (t.offset + (long) i * t.ld) * Float.BYTES, target, i * t.cols, t.cols);
        }
    }

    @Override
    public void write(float[] source, Tensor tensor) {
        CpuTensor t = cpu("tensor", tensor);
        hostArray("source", source.length, t);
        for (int i = 0; i < t.rows; i++) {
            MemorySegment.copy(source, i * t.cols, t.data, FLOAT, (t.offset + (long) i * t.ld) * Float.BYTES, t.cols);
        }
    }

    @Override
    public void close() {
        arena.close();
    }

    private static CpuTensor cpu(String name, Tensor tensor) {
        if (tensor instanceof CpuTensor t) {
            return t;
        }
        throw new IllegalArgumentException(name + " (" + tensor + ") must be a tensor of a CpuBackend");
    }

    private static void hostArray(String name, int length, CpuTensor t) {
        if (length < t.size()) {
            throw new IllegalArgumentException(
                    name + " (" + length + " floats) must hold rows × cols (" + t.size() + ")");
        }
    }

    private static void same(String name, int value, String boundName, int bound) {
        if (value != bound) {
            throw new IllegalArgumentException(name + " (" + value + ") must equal " + boundName + " (" + bound + ")");
        }
    }

    private static void sameShape(String name, CpuTensor t, String otherName, CpuTensor other) {
        if (t.rows != other.rows || t.cols != other.cols) {
            throw new IllegalArgumentException(name + " (" + t.rows + " × " + t.cols + ") must have the shape of "
                    + otherName + " (" + other.rows + " × " + other.cols + ")");
        }
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
