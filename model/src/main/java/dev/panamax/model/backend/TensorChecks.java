package dev.panamax.model.backend;

import dev.panamax.kernels.WeightFormat;
import java.lang.foreign.MemorySegment;

/** The shape checks every backend makes before it writes anything, with messages naming the argument and the bound. */
final class TensorChecks {
    private TensorChecks() {}

    /** Rows and columns of a new tensor. */
    static void shape(int rows, int cols) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException("rows (" + rows + ") and cols (" + cols + ") must be >= 0");
        }
    }

    /** Checks {@link Backend#weights}: a valid shape and exactly {@code rows × cols} floats. */
    static void weights(MemorySegment floats, int rows, int cols) {
        shape(rows, cols);
        if (floats.byteSize() != (long) rows * cols * Float.BYTES) {
            throw new IllegalArgumentException("floats (" + floats.byteSize() + " bytes) must hold exactly rows ("
                    + rows + ") × cols (" + cols + ") floats");
        }
    }

    /** A softmax temperature: finite and positive, with a finite reciprocal, by which the logits are scaled. */
    static void temperature(float temperature) {
        if (!(temperature > 0) || !Float.isFinite(temperature) || !Float.isFinite(1 / temperature)) {
            throw new IllegalArgumentException(
                    "temperature (" + temperature + ") must be finite and > 0, with a finite reciprocal");
        }
    }

    /** A host array copied to or from {@code t}: it must hold all of its floats. */
    static void hostArray(String name, int length, Tensor t) {
        long size = (long) t.rows() * t.cols();
        if (length < size) {
            throw new IllegalArgumentException(name + " (" + length + " floats) must hold rows × cols (" + size + ")");
        }
    }

    static void same(String name, int value, String boundName, int bound) {
        if (value != bound) {
            throw new IllegalArgumentException(name + " (" + value + ") must equal " + boundName + " (" + bound + ")");
        }
    }

    static void sameShape(String name, Tensor t, String otherName, Tensor other) {
        if (t.rows() != other.rows() || t.cols() != other.cols()) {
            throw new IllegalArgumentException(name + " (" + t.rows() + " × " + t.cols() + ") must have the shape of "
                    + otherName + " (" + other.rows() + " × " + other.cols() + ")");
        }
    }

    /** Rows per sequence of queries and of keys, and the head width, of an attention call. */
    record AttentionLayout(int queries, int keys, int headDim) {}

    static AttentionLayout attentionLayout(Tensor q, Tensor k, int heads, int kvHeads, int sequences) {
        if (heads < 1 || q.cols() % heads != 0) {
            throw new IllegalArgumentException(
                    "heads (" + heads + ") must be >= 1 and divide q.cols (" + q.cols() + ")");
        }
        int headDim = q.cols() / heads;
        same("keys.cols", k.cols(), "kvHeads × headDim", kvHeads * headDim);
        if (sequences < 1 || q.rows() % sequences != 0 || k.rows() % sequences != 0) {
            throw new IllegalArgumentException("sequences (" + sequences + ") must be >= 1 and divide q.rows ("
                    + q.rows() + ") and keys.rows (" + k.rows() + ")");
        }
        return new AttentionLayout(q.rows() / sequences, k.rows() / sequences, headDim);
    }

    /** The widths of a product's weights: {@code in} and {@code out}. */
    record Widths(int in, int out) {}

    /** Checks {@link Backend#matmul}'s shapes but the bias's. */
    static Widths matmul(Tensor x, Tensor w, Backend.Layout layout, Tensor y) {
        Widths widths = widths(w, layout);
        same("x.cols", x.cols(), "the weights' input width", widths.in());
        same("y.cols", y.cols(), "the weights' output width", widths.out());
        same("y.rows", y.rows(), "x.rows", x.rows());
        return widths;
    }

    /** Checks {@link Backend#matmulBackward}'s shapes but dx's and dbias's. */
    static Widths matmulBackward(Tensor x, Tensor w, Backend.Layout layout, Tensor dy, Tensor dw) {
        Widths widths = widths(w, layout);
        same("x.cols", x.cols(), "the weights' input width", widths.in());
        same("dy.cols", dy.cols(), "the weights' output width", widths.out());
        same("dy.rows", dy.rows(), "x.rows", x.rows());
        sameShape("dw", dw, "w", w);
        return widths;
    }

    /** A product with weights in a block format ({@code format}, named in the message): [out, in] without a bias. */
    static void quantizedMatmul(
            Tensor x, WeightFormat format, int wRows, int wCols, Backend.Layout layout, Tensor bias, Tensor y) {
        if (layout != Backend.Layout.OUT_IN || bias != null) {
            throw new IllegalArgumentException("a " + format + " weight matrix is [out, in] without a bias: layout ("
                    + layout + ") must be OUT_IN and bias null");
        }
        same("x.cols", x.cols(), "w.cols", wCols);
        same("y.cols", y.cols(), "w.rows", wRows);
        same("y.rows", y.rows(), "x.rows", x.rows());
    }

    /** A {@code [1, out]} bias or bias gradient. */
    static void biasRow(String name, Tensor bias, int out) {
        same(name + ".rows", bias.rows(), "1", 1);
        same(name + ".cols", bias.cols(), "the weights' output width", out);
    }

    private static Widths widths(Tensor w, Backend.Layout layout) {
        boolean outIn = java.util.Objects.requireNonNull(layout, "layout") == Backend.Layout.OUT_IN;
        return new Widths(outIn ? w.cols() : w.rows(), outIn ? w.rows() : w.cols());
    }

    /** Checks the shapes of {@link Backend#rmsNormBackward} and {@link Backend#layerNormBackward} but the bias's. */
    static void normBackward(Tensor x, Tensor weight, Tensor dy, Tensor dx, Tensor dweight) {
        sameShape("dy", dy, "x", x);
        sameShape("dx", dx, "x", x);
        same("weight.cols", weight.cols(), "x.cols", x.cols());
        sameShape("dweight", dweight, "weight", weight);
    }

    /** Checks {@link Backend#swigluBackward}'s shapes. */
    static void swigluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dgate, Tensor dup) {
        sameShape("up", up, "gate", gate);
        sameShape("dy", dy, "gate", gate);
        sameShape("dgate", dgate, "gate", gate);
        sameShape("dup", dup, "gate", gate);
    }

    /** Checks {@link Backend#adamw}'s shapes. */
    static void adamw(Tensor param, Tensor grad, Tensor m, Tensor v) {
        sameShape("grad", grad, "param", param);
        sameShape("m", m, "param", param);
        sameShape("v", v, "param", param);
    }

    /** Checks {@link Backend#attention}'s shapes but lse's: returns the layout, with keys ≥ position + queries. */
    static AttentionLayout attention(
            Tensor q, Tensor keys, Tensor values, int heads, int kvHeads, int sequences, int position, Tensor out) {
        sameShape("out", out, "q", q);
        sameShape("values", values, "keys", keys);
        AttentionLayout a = attentionLayout(q, keys, heads, kvHeads, sequences);
        if (position < 0 || position + a.queries() > a.keys()) {
            throw new IllegalArgumentException("position (" + position + ") + queries per sequence (" + a.queries()
                    + ") must be in [0, key rows per sequence (" + a.keys() + ")]");
        }
        return a;
    }

    /** Checks {@link Backend#attentionBackward}'s shapes; returns the layout. */
    static AttentionLayout attentionBackward(
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
        AttentionLayout a = attentionLayout(q, keys, heads, kvHeads, sequences);
        same("key rows per sequence", a.keys(), "queries per sequence", a.queries());
        sameShape("values", values, "keys", keys);
        sameShape("out", out, "q", q);
        sameShape("dout", dout, "q", q);
        sameShape("dq", dq, "q", q);
        sameShape("dk", dk, "keys", keys);
        sameShape("dv", dv, "keys", keys);
        same("lse.rows", lse.rows(), "q.rows", q.rows());
        same("lse.cols", lse.cols(), "heads", heads);
        return a;
    }
}
