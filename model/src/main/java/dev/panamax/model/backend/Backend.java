package dev.panamax.model.backend;

import dev.panamax.kernels.QuantizedMatrix;
import dev.panamax.kernels.WeightFormat;
import java.lang.foreign.MemorySegment;
import java.util.List;

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
     * Checks that {@code bytes} more can be allocated on this backend, before allocating them, so that a request too
     * large for the machine fails with one clear line instead of an {@link OutOfMemoryError} or a long zero-fill. The
     * bound is what the backend can tell (e.g. physical memory less what it holds), not a promise that smaller
     * requests succeed.
     *
     * @param purpose what the memory is for, for the message
     * @param bytes the bytes about to be allocated, {@link Long#MAX_VALUE} for more than a long counts
     * @throws InsufficientMemoryException if they do not fit
     */
    void requireMemory(String purpose, long bytes);

    /**
     * Whether {@link #weights} and {@link #rotary} allocate in this backend's memory (a device backend copies them
     * there), so that an estimate of what a model needs must count them; a host backend uses weights in place and
     * keeps rotary tables on the Java heap.
     *
     * @return true when weights and rotary tables take this backend's memory
     */
    default boolean copiesWeights() {
        return false;
    }

    /**
     * Bytes this backend allocates besides its tensors to multiply operands of at most {@code largestOperand} floats:
     * a device backend whose products take bfloat16 inputs rounds each operand into scratch memory that grows to the
     * largest. Part of what a model or trainer checks before it allocates.
     *
     * @param largestOperand the most floats of any operand of {@link #matmul} or {@link #matmulBackward}
     * @return the bytes, 0 for a backend that multiplies its tensors in place
     */
    default long productScratchBytes(long largestOperand) {
        return 0;
    }

    /**
     * A weight matrix in one of GGML's block formats that {@link #matmul} multiplies by, as {@link
     * #weights(QuantizedMatrix)} will take it: what sizes the scratch memory such a product may need.
     *
     * @param format the block format
     * @param rows the matrix's rows (outputs)
     * @param cols the matrix's columns (inputs)
     */
    record BlockWeights(WeightFormat format, int rows, int cols) {}

    /**
     * What sizes the scratch memory a model's forward pass takes besides its tensors ({@link #forwardScratchBytes}).
     *
     * @param rows the most rows (tokens) one operation of a forward pass takes: the batch size
     * @param heads the query heads of {@link #attention}
     * @param kvHeads its key/value heads
     * @param headDim its head width
     * @param positions the most keys a query sees: the positions of the key/value cache
     * @param largestOperand the most floats of any operand of {@link #matmul}
     * @param blockWeights the weights in a block format that {@link #matmul} multiplies by
     */
    record ForwardShape(
            int rows,
            int heads,
            int kvHeads,
            int headDim,
            int positions,
            long largestOperand,
            List<BlockWeights> blockWeights) {
        /**
         * Checks the sizes and copies the list of weights.
         *
         * @throws IllegalArgumentException if a size is out of range, naming it
         */
        public ForwardShape {
            if (rows < 1 || heads < 1 || kvHeads < 1 || headDim < 0 || positions < 1) {
                throw new IllegalArgumentException("rows (" + rows + "), heads (" + heads + "), kvHeads (" + kvHeads
                        + ") and positions (" + positions + ") must be >= 1, headDim (" + headDim + ") >= 0");
            }
            if (largestOperand < 0) {
                throw new IllegalArgumentException("largestOperand (" + largestOperand + ") must be >= 0");
            }
            blockWeights = List.copyOf(blockWeights);
        }
    }

    /**
     * Bytes this backend allocates besides its tensors for the forward passes of a model of {@code shape} (scratch
     * memory such as a device backend's token ids, attention's partial results, dequantized weights and rounded product
     * operands), all of which {@link #reserveForwardScratch} allocates: part of what a model checks before it allocates,
     * so that a model that passed its check never runs out of memory in a forward pass.
     *
     * @param shape the model's shapes
     * @return the bytes, 0 for a backend that needs none in its own memory
     */
    default long forwardScratchBytes(ForwardShape shape) {
        return 0;
    }

    /**
     * Allocates the scratch memory that {@link #forwardScratchBytes} counts for {@code shape}, growing what an earlier
     * model reserved, so that later forward passes of the model allocate nothing.
     *
     * @param shape the model's shapes
     * @throws InsufficientMemoryException if it does not fit
     */
    default void reserveForwardScratch(ForwardShape shape) {}

    /**
     * What this backend computes on, as a checkpoint records it: runs resumed on another kind continue, but not bit
     * for bit as they would have on the same kind.
     *
     * @return {@code cpu}, {@code emulated}, or {@code cuda} followed by the GPU's name
     */
    String kind();

    /**
     * How {@link #matmul} and {@link #matmulBackward} round their inputs.
     *
     * @return the precision chosen when the backend was created; {@link MatmulPrecision#FP32} unless it says otherwise
     */
    default MatmulPrecision precision() {
        return MatmulPrecision.FP32;
    }

    /**
     * Allocates a zero-filled matrix.
     *
     * @param rows rows, at least 0
     * @param cols columns, at least 0
     * @return the tensor, valid until the backend is closed
     */
    Tensor allocate(int rows, int cols);

    /**
     * Allocates a zero-filled matrix of training state that only the training step reads and writes: gradients and
     * optimizer moments. A host backend may keep it on the Java heap, where the memory-bound update kernels work on it
     * in place; the default is {@link #allocate}.
     *
     * @param rows rows, at least 0
     * @param cols columns, at least 0
     * @return the tensor, valid until the backend is closed
     */
    default Tensor allocateTrainingState(int rows, int cols) {
        return allocate(rows, cols);
    }

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
     * Makes a weight matrix in one of GGML's block formats (F16, BF16, Q8_0, Q4_0, …) available to the backend in
     * that format (a host backend may use the memory in place, a device backend copies it): the tensor works as the
     * weights of {@link #matmul} with {@link Layout#OUT_IN} and no bias, and as the table of {@link #embedding}, and
     * has row views but no column views.
     *
     * @param matrix the matrix; its memory must stay valid while the tensor is used on a host backend
     * @return the tensor, read-only by contract
     * @throws UnsupportedOperationException if this backend cannot compute with the matrix's format, naming it
     */
    Tensor weights(QuantizedMatrix matrix);

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
     * The gradients of {@link #matmul}: {@code dx = dy·op(W)ᵀ} (written, or added to dx), {@code dW += } the weight
     * gradient in W's own layout, and {@code dbias +=} the column sums of dy.
     *
     * @param x the forward's input {@code [m, in]}
     * @param w the forward's weights
     * @param layout how {@code w} (and {@code dw}) is stored
     * @param dy the gradient with respect to y, {@code [m, out]}
     * @param dx the gradient with respect to x, {@code [m, in]}, or null when not needed; must not overlap dy
     * @param accumulate whether dx is added to rather than overwritten
     * @param dw the weights' gradient, shaped as w, added to
     * @param dbias {@code [1, out]}, added to, or null when the forward had no bias
     */
    void matmulBackward(
            Tensor x, Tensor w, Layout layout, Tensor dy, Tensor dx, boolean accumulate, Tensor dw, Tensor dbias);

    /**
     * RMSNorm of each row: {@code y = x / √(mean(x²) + epsilon) ⊙ weight}.
     *
     * @param x the input {@code [m, n]}
     * @param weight {@code [1, n]}
     * @param epsilon added to the mean square
     * @param y the output {@code [m, n]}; may be x
     * @param rstd where to keep each row's {@code 1/√(mean(x²) + epsilon)} for the backward, {@code [m, 1]}, or null
     */
    void rmsNorm(Tensor x, Tensor weight, float epsilon, Tensor y, Tensor rstd);

    /**
     * The gradients of {@link #rmsNorm}.
     *
     * @param x the forward's input {@code [m, n]}
     * @param weight the forward's weight
     * @param rstd the forward's saved {@code rstd}
     * @param dy the gradient with respect to y
     * @param dx the gradient with respect to x, overwritten; may be dy
     * @param dweight the weight's gradient, added to
     */
    void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dweight);

    /**
     * LayerNorm of each row: {@code y = (x - mean) / √(var + epsilon) ⊙ weight + bias}.
     *
     * @param x the input {@code [m, n]}
     * @param weight {@code [1, n]}
     * @param bias {@code [1, n]}
     * @param epsilon added to the variance
     * @param y the output {@code [m, n]}; may be x
     * @param mean where to keep each row's mean for the backward, {@code [m, 1]}, or null
     * @param rstd where to keep each row's {@code 1/√(var + epsilon)}, {@code [m, 1]}, or null
     */
    void layerNorm(Tensor x, Tensor weight, Tensor bias, float epsilon, Tensor y, Tensor mean, Tensor rstd);

    /**
     * The gradients of {@link #layerNorm}.
     *
     * @param x the forward's input {@code [m, n]}
     * @param weight the forward's weight
     * @param mean the forward's saved means
     * @param rstd the forward's saved {@code rstd}
     * @param dy the gradient with respect to y
     * @param dx the gradient with respect to x, overwritten; may be dy
     * @param dweight the weight's gradient, added to
     * @param dbias the bias's gradient, added to
     */
    void layerNormBackward(
            Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dweight, Tensor dbias);

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
     * The gradient of {@link #rope}, in place: the inverse rotation applied to the output's gradient.
     *
     * @param rotary the forward's tables
     * @param dx on entry the gradient with respect to the rotated rows, on return with respect to the input
     * @param heads heads per row
     * @param position the forward's first position
     */
    void ropeBackward(Rotary rotary, Tensor dx, int heads, int position);

    /**
     * Causal multi-head attention of {@code sequences} independent sequences, each {@code m = q.rows / sequences} new
     * queries against its block of {@code keys.rows / sequences} key/value rows, whose first {@code position + m} rows
     * are filled (the new tokens' keys and values included): query {@code i} sees keys {@code j <= position + i},
     * scaled by {@code 1/√headDim}; query head {@code h} reads key/value head {@code h / (heads / kvHeads)}. Decoding
     * against a cache is one sequence; a training batch is many sequences at position 0.
     *
     * @param q queries {@code [sequences·m, heads·headDim]}
     * @param keys the keys {@code [sequences·rows, kvHeads·headDim]}, {@code rows ≥ position + m}
     * @param values the values, shaped as {@code keys}
     * @param heads query heads
     * @param kvHeads key/value heads, dividing {@code heads}
     * @param sequences the number of sequences, dividing the rows of q and of keys
     * @param position the position of each sequence's first query
     * @param out the output {@code [sequences·m, heads·headDim]}; must not overlap the inputs
     * @param lse where to keep each query's log-sum-exp of scores for the backward, {@code [sequences·m, heads]}, or
     *     null
     */
    void attention(
            Tensor q,
            Tensor keys,
            Tensor values,
            int heads,
            int kvHeads,
            int sequences,
            int position,
            Tensor out,
            Tensor lse);

    /**
     * The gradients of {@link #attention} at position 0 (every key row of a sequence seen by its queries): dq, dk and
     * dv are written, not added to.
     *
     * @param q the forward's queries
     * @param keys the forward's keys, {@code [sequences·m, kvHeads·headDim]}
     * @param values the forward's values
     * @param out the forward's output
     * @param lse the forward's saved log-sum-exps
     * @param dout the gradient with respect to out
     * @param heads query heads
     * @param kvHeads key/value heads
     * @param sequences the number of sequences
     * @param dq the gradient with respect to q, overwritten
     * @param dk the gradient with respect to keys, overwritten
     * @param dv the gradient with respect to values, overwritten
     */
    void attentionBackward(
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
            Tensor dv);

    /**
     * SwiGLU: {@code y = silu(gate) ⊙ up}.
     *
     * @param gate {@code [m, n]}
     * @param up {@code [m, n]}
     * @param y {@code [m, n]}; may be gate or up
     */
    void swiglu(Tensor gate, Tensor up, Tensor y);

    /**
     * The gradients of {@link #swiglu}.
     *
     * @param gate the forward's gate
     * @param up the forward's up projection
     * @param dy the gradient with respect to y
     * @param dgate the gate's gradient, overwritten
     * @param dup the up projection's gradient, overwritten
     */
    void swigluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dgate, Tensor dup);

    /**
     * GELU with GPT-2's tanh approximation, elementwise.
     *
     * @param x the input
     * @param y the output, shaped as x; may be x
     */
    void gelu(Tensor x, Tensor y);

    /**
     * The gradient of {@link #gelu}.
     *
     * @param x the forward's input
     * @param dy the gradient with respect to y
     * @param dx the gradient with respect to x, overwritten; may be dy
     */
    void geluBackward(Tensor x, Tensor dy, Tensor dx);

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
     * The gradient of {@link #embedding}: row {@code i} of dout is added to row {@code tokens[offset + i]} of dtable.
     *
     * @param tokens the forward's token ids
     * @param offset index of the first token used
     * @param dout the gradient with respect to the gathered rows, {@code [m, n]}
     * @param dtable the table's gradient {@code [vocab, n]}, added to
     */
    void embeddingBackward(int[] tokens, int offset, Tensor dout, Tensor dtable);

    /**
     * The mean cross-entropy of rows of logits against target ids, and optionally its gradient.
     *
     * @param logits {@code [m, vocab]}
     * @param targets target ids, each in {@code [0, vocab)}
     * @param offset index of row 0's target
     * @param dlogits where to write {@code gradientScale ·} the gradient of the mean loss, or null; may be logits
     * @param gradientScale the factor on the gradient (e.g. 1/micro-batches when accumulating)
     * @return the mean loss
     */
    float crossEntropy(Tensor logits, int[] targets, int offset, Tensor dlogits, float gradientScale);

    /**
     * Counts the rows whose largest logit (first on ties) is at the target's column.
     *
     * @param logits {@code [m, vocab]}
     * @param targets target ids
     * @param offset index of row 0's target
     * @return the number of correct predictions, in {@code [0, m]}
     */
    int countCorrect(Tensor logits, int[] targets, int offset);

    /**
     * Sets every element to 0.
     *
     * @param tensor the tensor
     */
    void zero(Tensor tensor);

    /**
     * Returns {@code Σ x²} over the tensor, in float64, in an order independent of the thread count.
     *
     * @param tensor the tensor
     * @return the sum of squares
     */
    double sumOfSquares(Tensor tensor);

    /**
     * One AdamW step (decoupled weight decay) on a parameter tensor: with {@code g = gradScale·grad},
     * {@code m = β1·m + (1-β1)·g}, {@code v = β2·v + (1-β2)·g²}, and {@code param -= lr·(m̂/(√v̂ + ε) + wd·param)} with
     * the bias-corrected moments {@code m̂ = m/(1-β1^step)}, {@code v̂ = v/(1-β2^step)}.
     *
     * @param param the parameters, updated
     * @param grad their gradient
     * @param m the first moment, shaped as param, updated
     * @param v the second moment, shaped as param, updated
     * @param hyper the step's hyperparameters
     */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep hyper);

    /**
     * What one training step reads back, accumulated where the tensors live, so that a device backend waits for the
     * host once per step, at {@link #read()}: each micro-batch's mean loss and correct predictions ({@link
     * #crossEntropy(Tensor, int[], int, Tensor, float, StepTotals, int)}), and the gradients' global norm with the
     * clipping factor derived from it ({@link #clipGradients}), which {@link #adamw(Tensor, Tensor, Tensor, Tensor,
     * AdamWStep, StepTotals)} applies without the host seeing it.
     */
    interface StepTotals {
        /**
         * Waits for the backend's queued work and returns the totals.
         *
         * @return the micro-batches' losses and counts, and the norm
         */
        StepValues read();
    }

    /**
     * The values of {@link StepTotals}.
     *
     * @param losses each micro-batch's mean loss
     * @param correct each micro-batch's count of rows whose largest logit is the target
     * @param norm the gradients' global norm; NaN before {@link #clipGradients}
     */
    record StepValues(float[] losses, long[] correct, float norm) {}

    /**
     * Starts the totals of one training step.
     *
     * @param microBatches the micro-batches the step accumulates, at least 1
     * @return empty totals, valid until the backend is closed
     */
    default StepTotals stepTotals(int microBatches) {
        return new HostStepTotals(microBatches);
    }

    /**
     * {@link #countCorrect} and then {@link #crossEntropy(Tensor, int[], int, Tensor, float)} (which may overwrite the
     * logits with their gradient), their results kept in {@code totals} as micro-batch {@code microBatch}'s.
     *
     * @param logits {@code [n, vocab]}
     * @param targets the target ids
     * @param offset index of the first row's target
     * @param dlogits where the gradient goes ({@code [n, vocab]}, may be logits), or null
     * @param gradientScale a factor on the gradient
     * @param totals the step's totals, from this backend
     * @param microBatch which micro-batch, in {@code [0, microBatches)}
     */
    default void crossEntropy(
            Tensor logits,
            int[] targets,
            int offset,
            Tensor dlogits,
            float gradientScale,
            StepTotals totals,
            int microBatch) {
        HostStepTotals host = HostStepTotals.of(totals, microBatch);
        long correct = countCorrect(logits, targets, offset);
        host.record(microBatch, crossEntropy(logits, targets, offset, dlogits, gradientScale), correct);
    }

    /**
     * The global norm of the gradients ({@code √Σ} of every tensor's {@link #sumOfSquares}, added in order) and the
     * clipping factor: {@code maxNorm / norm} when {@code maxNorm > 0} and the norm exceeds it, else 1; both kept in
     * {@code totals}. A norm that is not finite makes the following {@link #adamw(Tensor, Tensor, Tensor, Tensor,
     * AdamWStep, StepTotals)} calls leave everything unchanged.
     *
     * @param gradients the gradient tensors, in a fixed order
     * @param maxNorm the clipping threshold; 0 or less for none
     * @param totals the step's totals, from this backend
     */
    default void clipGradients(List<Tensor> gradients, float maxNorm, StepTotals totals) {
        double squares = 0;
        for (Tensor g : gradients) {
            squares += sumOfSquares(g);
        }
        HostStepTotals.of(totals, 0).clip((float) Math.sqrt(squares), maxNorm);
    }

    /**
     * {@link #adamw(Tensor, Tensor, Tensor, Tensor, AdamWStep)} with the clipping factor of {@code totals} in place of
     * {@code hyper.gradScale()}; nothing changes when the norm was not finite.
     *
     * @param param the parameters, updated
     * @param grad their gradient
     * @param m the first moment, updated
     * @param v the second moment, updated
     * @param hyper the step's hyperparameters (its gradScale is not used)
     * @param totals the step's totals, after {@link #clipGradients}
     */
    default void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep hyper, StepTotals totals) {
        float scale = HostStepTotals.of(totals, 0).scale();
        if (Float.isFinite(scale)) {
            adamw(
                    param,
                    grad,
                    m,
                    v,
                    new AdamWStep(
                            hyper.learningRate(),
                            hyper.beta1(),
                            hyper.beta2(),
                            hyper.epsilon(),
                            hyper.weightDecay(),
                            hyper.step(),
                            scale));
        }
    }

    /**
     * The numbers of one AdamW step.
     *
     * @param learningRate the step size, at least 0
     * @param beta1 the first moment's decay, in [0, 1)
     * @param beta2 the second moment's decay, in [0, 1)
     * @param epsilon added to √v̂, positive
     * @param weightDecay the decoupled decay, at least 0 (0 for norms and biases)
     * @param step the 1-based step number, for the bias correction
     * @param gradScale a factor on the gradient (global-norm clipping)
     */
    record AdamWStep(
            float learningRate,
            float beta1,
            float beta2,
            float epsilon,
            float weightDecay,
            int step,
            float gradScale) {}

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
