package dev.panamax.model.generate;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.io.Gpt2Weights;
import dev.panamax.model.io.LlamaWeights;
import dev.panamax.model.io.ModelConfig;
import dev.panamax.model.io.ModelConfig.Architecture;
import dev.panamax.model.nn.Network;
import dev.panamax.model.nn.Parameters;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

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

    private final ModelConfig config;
    private final Backend backend;
    private final Network network;
    private final Tensor[] keys;
    private final Tensor[] values;
    private final int maxBatch;
    private final Tensor x;
    private final Network.Activations scratch;
    private final Tensor logits;
    private int position;

    /**
     * A model over named weights.
     *
     * @param backend where the weights, the cache and the activations live
     * @param config the configuration
     * @param weights every tensor of {@link Parameters#of(ModelConfig)} under its name
     * @param maxBatch most tokens per batch (scratch memory grows with it); {@link #DEFAULT_MAX_BATCH} is a fair choice
     * @throws IllegalArgumentException if a weight is missing or misshapen, or {@code maxBatch < 1}
     */
    public Transformer(Backend backend, ModelConfig config, Map<String, Tensor> weights, int maxBatch) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch (" + maxBatch + ") must be >= 1");
        }
        this.config = config;
        this.backend = backend;
        this.network = Network.of(backend, config, weights);
        this.keys = new Tensor[config.layers()];
        this.values = new Tensor[config.layers()];
        for (int l = 0; l < config.layers(); l++) {
            keys[l] = backend.allocate(config.seqLen(), config.kvDim());
            values[l] = backend.allocate(config.seqLen(), config.kvDim());
        }
        this.maxBatch = Math.min(maxBatch, config.seqLen());
        int dim = config.dim();
        this.x = backend.allocate(this.maxBatch, dim);
        // The residual stream is updated in place; the normalised rows and the projections share one buffer.
        Tensor xb = backend.allocate(this.maxBatch, dim);
        Tensor hidden = backend.allocate(this.maxBatch, config.hiddenDim());
        boolean llama = config.architecture() == Architecture.LLAMA;
        this.scratch = new Network.Activations(
                x,
                xb,
                null,
                null,
                backend.allocate(this.maxBatch, dim),
                backend.allocate(this.maxBatch, dim),
                null,
                xb,
                x,
                xb,
                null,
                null,
                hidden,
                llama ? backend.allocate(this.maxBatch, config.hiddenDim()) : null,
                hidden,
                x);
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
        requireLayers(config, weights.layers().size());
        Map<String, MemorySegment> named = weights.byName(config.sharedClassifier());
        return new Transformer(backend, config, onBackend(backend, config, named), maxBatch);
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
        requireLayers(config, weights.layers().size());
        Map<String, MemorySegment> named = weights.byName();
        return new Transformer(backend, config, onBackend(backend, config, named), maxBatch);
    }

    /** Hands each named segment to the backend with its shape from {@link Parameters#of(ModelConfig)}. */
    private static Map<String, Tensor> onBackend(
            Backend backend, ModelConfig config, Map<String, MemorySegment> named) {
        Map<String, Tensor> tensors = new HashMap<>();
        for (Parameters.Spec spec : Parameters.of(config)) {
            tensors.put(spec.name(), backend.weights(named.get(spec.name()), spec.rows(), spec.cols()));
        }
        return tensors;
    }

    private static void requireArchitecture(ModelConfig config, Architecture architecture) {
        if (config.architecture() != architecture) {
            throw new IllegalArgumentException(
                    "config.architecture (" + config.architecture() + ") must be " + architecture);
        }
    }

    private static void requireLayers(ModelConfig config, int layers) {
        if (layers != config.layers()) {
            throw new IllegalArgumentException(
                    "weights.layers (" + layers + ") must number config.layers (" + config.layers() + ")");
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
        network.head(x.rows(last, 1), scratch.norm1().rows(0, 1), null, null, logits);
        return logits;
    }

    /** One batch of {@code n <= maxBatch} tokens through every block, leaving the last hidden states in x. */
    private void batch(int[] tokens, int offset, int n) {
        Network.Activations a = scratch.firstRows(n);
        network.embed(tokens, offset, 1, position, a.input());
        for (int l = 0; l < config.layers(); l++) {
            network.forwardBlock(l, a, keys[l], values[l], 1, position);
        }
        position += n;
    }
}
