package dev.panamax.model.backend;

/** The shape checks every backend makes before it writes anything, with messages naming the argument and the bound. */
final class TensorChecks {
    private TensorChecks() {}

    /** Rows and columns of a new tensor. */
    static void shape(int rows, int cols) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException("rows (" + rows + ") and cols (" + cols + ") must be >= 0");
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
}
