package dev.panamax.model.backend;

import java.lang.foreign.MemorySegment;

/**
 * The operations of a Transformer forward pass, on tensors the backend owns: the only place the model touches kernels
 * or a GPU. Activations are row-major {@code [tokens, width]} matrices, one row per token; every operation works on
 * all rows at once, so a prompt is processed as a batch and a decode step is the same call with one row. Outputs may
 * alias inputs where stated; otherwise they must not overlap them. Shapes are checked before anything is written.
 */
public interface Backend extends AutoCloseable {
    /** How a weight matrix that maps width {@code in} to width {@code out} is stored. */
    enum Layout {
        /** {@code [out, in]} (llama2.c, PyTorch {@code Linear}): {@code y = x·Wᵀ}. */
        OUT_IN,
        /** {@code [in, out]} (Hugging Face GPT-2 {@code Conv1D}): {@code y = x·W}. */
        IN_OUT
    }

    /** Precomputed rotary position embedding tables, from {@link #rotary}. */
    interface Rotary {}

    /**
     * Allocates a zero-filled matrix.
     *
     * @param rows rows, at least 0
     * @param cols columns, at least 0
     * @return the tensor, valid until the backend is closed
     */
    Tensor allocate(int rows, int cols);

    /**
     * Makes weights available to the backend: a host backend may use the memory in place (a memory-mapped file stays
     * mapped, not copied), a device backend copies it.
     *
     * @param floats {@code rows·cols} little-endian float32 values, row-major; must stay valid while the tensor is used
     * @param rows rows, at least 0
     * @param cols columns, at least 0
     * @return the tensor, read-only by contract
     * @throws IllegalArgumentException if the segment does not hold exactly {@code rows·cols} floats
     */
    Tensor weights(MemorySegment floats, int rows, int cols);

    /**
     * Builds rotary position embedding tables with llama2.c's convention: adjacent pairs {@code (x[2k], x[2k+1])}
     * rotated by {@code position·theta^(-2k/headDim)}.
     *
     * @param headDim floats per head, even
     * @param maxPositions the positions covered
     * @param theta the frequency base
     * @return the tables
     */
    Rotary rotary(int headDim, int maxPositions, double theta);

    /**
     * {@code y = x·op(W) + bias} row by row, for x {@code [m, in]} and y {@code [m, out]}.
     *
     * @param x the input
     * @param w the weights, {@code [out, in]} or {@code [in, out]} as {@code layout} says
     * @param layout how {@code w} is stored
     * @param bias {@code [1, out]}, or null for none
     * @param y the output; must not overlap x
     */
    void matmul(Tensor x, Tensor w, Layout layout, Tensor bias, Tensor y);

    /**
     * RMSNorm of each row: {@code y = x / √(mean(x²) + epsilon) ⊙ weight}.
     *
     * @param x the input {@code [m, n]}
     * @param weight {@code [1, n]}
     * @param epsilon added to the mean square
     * @param y the output {@code [m, n]}; may be x
     */
    void rmsNorm(Tensor x, Tensor weight, float epsilon, Tensor y);

    /**
     * LayerNorm of each row: {@code y = (x - mean) / √(var + epsilon) ⊙ weight + bias}.
     *
     * @param x the input {@code [m, n]}
     * @param weight {@code [1, n]}
     * @param bias {@code [1, n]}
     * @param epsilon added to the variance
     * @param y the output {@code [m, n]}; may be x
     */
    void layerNorm(Tensor x, Tensor weight, Tensor bias, float epsilon, Tensor y);

    /**
     * Rotates each row's heads in place; row {@code i} is at position {@code position + i}.
     *
     * @param rotary the tables
     * @param x {@code [m, heads·headDim]}
     * @param heads heads per row
     * @param position the position of the first row
     */
    void rope(Rotary rotary, Tensor x, int heads, int position);

    /**
     * Causal multi-head attention of {@code m} new queries against a key/value cache whose first {@code position + m}
     * rows are filled (the new tokens' keys and values included): query {@code i} sees keys {@code j <= position + i},
     * scaled by {@code 1/√headDim}; query head {@code h} reads key/value head {@code h / (heads / kvHeads)}.
     *
     * @param q queries {@code [m, heads·headDim]}
     * @param keys the key cache {@code [≥ position + m, kvHeads·headDim]}
     * @param values the value cache, shaped as {@code keys}
     * @param heads query heads
     * @param kvHeads key/value heads, dividing {@code heads}
     * @param position the position of the first query
     * @param out the output {@code [m, heads·headDim]}; must not overlap the inputs
     */
    void attention(Tensor q, Tensor keys, Tensor values, int heads, int kvHeads, int position, Tensor out);

    /**
     * SwiGLU: {@code y = silu(gate) ⊙ up}.
     *
     * @param gate {@code [m, n]}
     * @param up {@code [m, n]}
     * @param y {@code [m, n]}; may be gate or up
     */
    void swiglu(Tensor gate, Tensor up, Tensor y);

    /**
     * GELU with GPT-2's tanh approximation, elementwise.
     *
     * @param x the input
     * @param y the output, shaped as x; may be x
     */
    void gelu(Tensor x, Tensor y);

    /**
     * {@code y = a + b}, elementwise: the residual connection.
     *
     * @param a the first input
     * @param b the second input, shaped as a
     * @param y the output, shaped as a; may be a or b
     */
    void add(Tensor a, Tensor b, Tensor y);

    /**
     * Gathers rows of an embedding table: row {@code i} of out is row {@code tokens[offset + i]} of the table.
     *
     * @param tokens token ids, each in {@code [0, table.rows())}
     * @param offset index of the first token used
     * @param table {@code [vocab, n]}
     * @param out {@code [m, n]}: m tokens are read
     */
    void embedding(int[] tokens, int offset, Tensor table, Tensor out);

    /**
     * Replaces each row by {@code softmax(x / temperature)}.
     *
     * @param x the rows, in place
     * @param temperature the divisor, finite and positive
     */
    void softmax(Tensor x, float temperature);

    /**
     * Returns the column of a row's largest value, the first one on ties; NaN is never the largest.
     *
     * @param row {@code [1, n]}, n at least 1
     * @return the column index
     */
    int argmax(Tensor row);

    /**
     * Copies a tensor to host memory, row-major without gaps.
     *
     * @param tensor the tensor
     * @param target at least {@code rows·cols} floats
     */
    void read(Tensor tensor, float[] target);

    /**
     * Copies host values into a tensor, row-major without gaps.
     *
     * @param source at least {@code rows·cols} floats
     * @param tensor the tensor, overwritten
     */
    void write(float[] source, Tensor tensor);

    /** Frees what the backend allocated; its tensors must not be used afterwards. */
    @Override
    void close();
}
