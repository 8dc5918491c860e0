package dev.panamax.model.generate;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Backend.Layout;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.io.Gpt2Weights;
import dev.panamax.model.io.LlamaWeights;
import dev.panamax.model.io.ModelConfig;
import dev.panamax.model.io.ModelConfig.Architecture;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * A decoder-only Transformer with a key/value cache, for both families of {@link ModelConfig.Architecture}: one
 * forward pass in which the variants differ only in the normalisation (RMSNorm or LayerNorm), the position encoding
 * (RoPE on queries and keys, or learned positions added to the embeddings), the feed-forward activation (SwiGLU or
 * GELU), the biases (none, or on every projection) and the weights' layout. Everything runs on a {@link Backend}.
 *
 * <p>The cache holds keys and values of every layer for the whole context, allocated up front. {@link #forward}
 * appends tokens at the current position: a prompt goes through as a batch (one matrix product per weight for all its
 * tokens, attention with as many queries), a decode step is the same pass with one token. Not thread-safe.
 */
public final class Transformer {
    /** Most tokens one batch holds by default; longer prompts go through in batches of this size. */
    public static final int DEFAULT_MAX_BATCH = 256;

    /**
     * One block's weights; the variants leave what they lack null.
     *
     * @param up the feed-forward input projection (Llama's {@code w3}, GPT-2's {@code c_fc})
     * @param gate Llama's {@code w1}, whose SiLU multiplies {@code up}; null for GPT-2
     * @param down the feed-forward output projection
     */
    private record Block(
            Tensor norm1,
            Tensor norm1Bias,
            Tensor wq,
            Tensor bq,
            Tensor wk,
            Tensor bk,
            Tensor wv,
            Tensor bv,
            Tensor wo,
            Tensor bo,
            Tensor norm2,
            Tensor norm2Bias,
            Tensor up,
            Tensor upBias,
            Tensor gate,
            Tensor down,
            Tensor downBias) {}

    private final ModelConfig config;
    private final Backend backend;
    private final boolean llama;
    private final Layout layout;
    private final Tensor tokenEmbedding;
    private final Tensor positionEmbedding;
    private final List<Block> blocks;
    private final Tensor finalNorm;
    private final Tensor finalNormBias;
    private final Tensor classifier;
    private final Backend.Rotary rotary;
    private final Tensor[] keys;
    private final Tensor[] values;
    private final int maxBatch;
    private final Tensor x;
    private final Tensor xb;
    private final Tensor q;
    private final Tensor attended;
    private final Tensor hidden;
    private final Tensor gated;
    private final Tensor logits;
    private int position;

    private Transformer(
            ModelConfig config,
            Backend backend,
            int maxBatch,
            Tensor tokenEmbedding,
            Tensor positionEmbedding,
            List<Block> blocks,
            Tensor finalNorm,
            Tensor finalNormBias,
            Tensor classifier) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch (" + maxBatch + ") must be >= 1");
        }
        this.config = config;
        this.backend = backend;
        this.llama = config.architecture() == Architecture.LLAMA;
        this.layout = llama ? Layout.OUT_IN : Layout.IN_OUT;
        this.tokenEmbedding = tokenEmbedding;
        this.positionEmbedding = positionEmbedding;
        this.blocks = List.copyOf(blocks);
        this.finalNorm = finalNorm;
        this.finalNormBias = finalNormBias;
        this.classifier = classifier;
        this.rotary = llama ? backend.rotary(config.headSize(), config.seqLen(), config.ropeTheta()) : null;
        this.keys = new Tensor[config.layers()];
        this.values = new Tensor[config.layers()];
        for (int l = 0; l < config.layers(); l++) {
            keys[l] = backend.allocate(config.seqLen(), config.kvDim());
            values[l] = backend.allocate(config.seqLen(), config.kvDim());
        }
        this.maxBatch = Math.min(maxBatch, config.seqLen());
        int dim = config.dim();
        this.x = backend.allocate(this.maxBatch, dim);
        this.xb = backend.allocate(this.maxBatch, dim);
        this.q = backend.allocate(this.maxBatch, dim);
        this.attended = backend.allocate(this.maxBatch, dim);
        this.hidden = backend.allocate(this.maxBatch, config.hiddenDim());
        this.gated = llama ? backend.allocate(this.maxBatch, config.hiddenDim()) : null;
        this.logits = backend.allocate(1, config.vocabSize());
    }

    /**
     * A Llama-family model (llama2.c's layout: matrices {@code [out, in]}, RoPE on adjacent pairs).
     *
     * @param backend where the weights, the cache and the activations live
     * @param config a Llama configuration
     * @param weights its weights, kept in place by a host backend
     * @param maxBatch most tokens per batch (scratch memory grows with it); {@link #DEFAULT_MAX_BATCH} is a fair choice
     * @return the model, at position 0
     * @throws IllegalArgumentException if the configuration is not Llama's, or a weight's size does not match it
     */
    public static Transformer llama(Backend backend, ModelConfig config, LlamaWeights weights, int maxBatch) {
        requireArchitecture(config, Architecture.LLAMA);
        int dim = config.dim();
        int kv = config.kvDim();
        int h = config.hiddenDim();
        List<Block> blocks = new ArrayList<>();
        for (LlamaWeights.Layer layer : weights.layers()) {
            blocks.add(new Block(
                    backend.weights(layer.attentionNorm(), 1, dim),
                    null,
                    backend.weights(layer.wq(), dim, dim),
                    null,
                    backend.weights(layer.wk(), kv, dim),
                    null,
                    backend.weights(layer.wv(), kv, dim),
                    null,
                    backend.weights(layer.wo(), dim, dim),
                    null,
                    backend.weights(layer.ffnNorm(), 1, dim),
                    null,
                    backend.weights(layer.w3(), h, dim),
                    null,
                    backend.weights(layer.w1(), h, dim),
                    backend.weights(layer.w2(), dim, h),
                    null));
        }
        requireLayers(config, blocks);
        Tensor embedding = backend.weights(weights.tokenEmbedding(), config.vocabSize(), dim);
        Tensor classifier =
                config.sharedClassifier() ? embedding : backend.weights(weights.classifier(), config.vocabSize(), dim);
        return new Transformer(
                config,
                backend,
                maxBatch,
                embedding,
                null,
                blocks,
                backend.weights(weights.finalNorm(), 1, dim),
                null,
                classifier);
    }

    /**
     * A GPT-2 model (Hugging Face's layout: {@code Conv1D} matrices {@code [in, out]}, the classifier tied to the token
     * embedding).
     *
     * @param backend where the weights, the cache and the activations live
     * @param config a GPT-2 configuration
     * @param weights its weights, kept in place by a host backend
     * @param maxBatch most tokens per batch; {@link #DEFAULT_MAX_BATCH} is a fair choice
     * @return the model, at position 0
     * @throws IllegalArgumentException if the configuration is not GPT-2's, or a weight's size does not match it
     */
    public static Transformer gpt2(Backend backend, ModelConfig config, Gpt2Weights weights, int maxBatch) {
        requireArchitecture(config, Architecture.GPT2);
        int dim = config.dim();
        int h = config.hiddenDim();
        List<Block> blocks = new ArrayList<>();
        for (Gpt2Weights.Layer layer : weights.layers()) {
            // c_attn holds the query, key and value projections side by side: [dim, 3·dim], biases likewise.
            Tensor qkv = backend.weights(layer.attentionWeight(), dim, 3 * dim);
            Tensor qkvBias = backend.weights(layer.attentionBias(), 1, 3 * dim);
            blocks.add(new Block(
                    vector(backend, layer.norm1Weight(), dim),
                    vector(backend, layer.norm1Bias(), dim),
                    qkv.columns(0, dim),
                    qkvBias.columns(0, dim),
                    qkv.columns(dim, dim),
                    qkvBias.columns(dim, dim),
                    qkv.columns(2 * dim, dim),
                    qkvBias.columns(2 * dim, dim),
                    backend.weights(layer.attentionProjectionWeight(), dim, dim),
                    vector(backend, layer.attentionProjectionBias(), dim),
                    vector(backend, layer.norm2Weight(), dim),
                    vector(backend, layer.norm2Bias(), dim),
                    backend.weights(layer.mlpWeight(), dim, h),
                    vector(backend, layer.mlpBias(), h),
                    null,
                    backend.weights(layer.mlpProjectionWeight(), h, dim),
                    vector(backend, layer.mlpProjectionBias(), dim)));
        }
        requireLayers(config, blocks);
        Tensor embedding = backend.weights(weights.tokenEmbedding(), config.vocabSize(), dim);
        return new Transformer(
                config,
                backend,
                maxBatch,
                embedding,
                backend.weights(weights.positionEmbedding(), config.seqLen(), dim),
                blocks,
                vector(backend, weights.finalNormWeight(), dim),
                vector(backend, weights.finalNormBias(), dim),
                embedding);
    }

    private static Tensor vector(Backend backend, MemorySegment floats, int n) {
        return backend.weights(floats, 1, n);
    }

    private static void requireArchitecture(ModelConfig config, Architecture architecture) {
        if (config.architecture() != architecture) {
            throw new IllegalArgumentException(
                    "config.architecture (" + config.architecture() + ") must be " + architecture);
        }
    }

    private static void requireLayers(ModelConfig config, List<Block> blocks) {
        if (blocks.size() != config.layers()) {
            throw new IllegalArgumentException(
                    "weights.layers (" + blocks.size() + ") must number config.layers (" + config.layers() + ")");
        }
    }

    /**
     * Returns the configuration.
     *
     * @return the configuration
     */
    public ModelConfig config() {
        return config;
    }

    /**
     * Returns the backend the model runs on, which owns the tensors {@link #forward} returns.
     *
     * @return the backend
     */
    public Backend backend() {
        return backend;
    }

    /**
     * Returns the number of tokens in the cache: the position the next token gets.
     *
     * @return the position, in {@code [0, config().seqLen()]}
     */
    public int position() {
        return position;
    }

    /** Empties the cache: the next token gets position 0. */
    public void reset() {
        position = 0;
    }

    /**
     * Runs tokens through the model at the current position, appending their keys and values to the cache, and
     * returns the logits that predict the token after the last of them.
     *
     * @param tokens token ids, each in {@code [0, vocabSize)}
     * @param offset index of the first token to run
     * @param count how many tokens, at least 1
     * @return {@code [1, vocabSize]} logits, owned by the model and overwritten by the next call
     * @throws IllegalArgumentException if the range is not inside {@code tokens} or a token id is out of range
     * @throws IllegalStateException if the tokens do not fit in the context: {@code position() + count > seqLen}
     */
    public Tensor forward(int[] tokens, int offset, int count) {
        if (count < 1 || offset < 0 || offset > tokens.length - count) {
            throw new IllegalArgumentException("offset (" + offset + ") and count (" + count
                    + ") must give a non-empty range inside tokens (length " + tokens.length + ")");
        }
        if (count > config.seqLen() - position) {
            throw new IllegalStateException("context length exceeded: " + position + " positions used + " + count
                    + " new tokens > the model's context length (seqLen " + config.seqLen() + ")");
        }
        for (int i = offset; i < offset + count; i++) {
            if (tokens[i] < 0 || tokens[i] >= config.vocabSize()) {
                throw new IllegalArgumentException(
                        "tokens[" + i + "] (" + tokens[i] + ") must be in [0, vocabSize (" + config.vocabSize() + "))");
            }
        }
        for (int done = 0; done < count; ) {
            int n = Math.min(maxBatch, count - done);
            batch(tokens, offset + done, n);
            done += n;
        }
        // The last batch holds the last token in row (count - 1) % maxBatch.
        int last = (count - 1) % maxBatch;
        Tensor state = xb.rows(0, 1);
        norm(x.rows(last, 1), finalNorm, finalNormBias, state);
        backend.matmul(state, classifier, Layout.OUT_IN, null, logits);
        return logits;
    }

    /** One batch of {@code n <= maxBatch} tokens through every block, leaving the last hidden states in x. */
    private void batch(int[] tokens, int offset, int n) {
        Tensor x = this.x.rows(0, n);
        Tensor xb = this.xb.rows(0, n);
        Tensor q = this.q.rows(0, n);
        Tensor attended = this.attended.rows(0, n);
        Tensor hidden = this.hidden.rows(0, n);
        backend.embedding(tokens, offset, tokenEmbedding, x);
        if (positionEmbedding != null) {
            backend.add(x, positionEmbedding.rows(position, n), x);
        }
        for (int l = 0; l < blocks.size(); l++) {
            Block b = blocks.get(l);
            Tensor k = keys[l].rows(position, n);
            Tensor v = values[l].rows(position, n);
            norm(x, b.norm1, b.norm1Bias, xb);
            backend.matmul(xb, b.wq, layout, b.bq, q);
            backend.matmul(xb, b.wk, layout, b.bk, k);
            backend.matmul(xb, b.wv, layout, b.bv, v);
            if (rotary != null) {
                backend.rope(rotary, q, config.heads(), position);
                backend.rope(rotary, k, config.kvHeads(), position);
            }
            backend.attention(q, keys[l], values[l], config.heads(), config.kvHeads(), position, attended);
            backend.matmul(attended, b.wo, layout, b.bo, xb);
            backend.add(x, xb, x);
            norm(x, b.norm2, b.norm2Bias, xb);
            backend.matmul(xb, b.up, layout, b.upBias, hidden);
            if (b.gate != null) {
                Tensor gated = this.gated.rows(0, n);
                backend.matmul(xb, b.gate, layout, null, gated);
                backend.swiglu(gated, hidden, hidden);
            } else {
                backend.gelu(hidden, hidden);
            }
            backend.matmul(hidden, b.down, layout, b.downBias, xb);
            backend.add(x, xb, x);
        }
        position += n;
    }

    private void norm(Tensor in, Tensor weight, Tensor bias, Tensor out) {
        if (llama) {
            backend.rmsNorm(in, weight, config.normEpsilon(), out);
        } else {
            backend.layerNorm(in, weight, bias, config.normEpsilon(), out);
        }
    }
}
