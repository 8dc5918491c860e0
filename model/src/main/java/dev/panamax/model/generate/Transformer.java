package dev.panamax.model.generate;

import dev.panamax.kernels.QuantizedMatrix;
import dev.panamax.kernels.WeightFormat;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.MemorySize;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.nn.Gpt2Weights;
import dev.panamax.model.nn.LlamaWeights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Network;
import dev.panamax.model.nn.Parameters;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import java.util.function.IntFunction;

/**
 * A decoder-only Transformer with a key/value cache, for both families of {@link ModelConfig.Architecture}: one
 * forward pass in which the variants differ only in the normalisation (RMSNorm or LayerNorm), the position encoding
 * (RoPE on queries and keys, or learned positions added to the embeddings), the feed-forward activation (SwiGLU or
 * GELU), the biases (none, or on every projection) and the weights' layout. Everything runs on a {@link Backend}.
 *
 * <p>The cache holds keys and values of every layer for as many positions as the caller asks (the model's whole context
 * by default; a generation needs only its prompt and the tokens it will produce), allocated up front after checking
 * that they fit in the backend's memory, with the activations and the scratch memory the backend's forward passes need
 * ({@link Backend#reserveForwardScratch}), so that forward passes allocate nothing more. {@link #forward}
 * appends tokens at the current position: a prompt goes through as a batch (one matrix product per weight for all its
 * tokens, attention with as many queries), a decode step is the same pass with one token. Not thread-safe.
 */
public final class Transformer {
    /** Most tokens one batch holds by default; longer prompts go through in batches of this size. */
    public static final int DEFAULT_MAX_BATCH = 256;

    private final ModelConfig config;
    private final int contextLength;
    private final Backend backend;
    private final Network network;
    private final Tensor[] keys;
    private final Tensor[] values;
    private final int maxBatch;
    private final Tensor x;
    private final Network.Activations scratch;
    private final Tensor logits;
    /** The logits of every row of a batch, for {@link #forwardEach}; allocated on its first call. */
    private Tensor batchLogits;

    private int position;

    /**
     * A model whose cache holds {@code contextLength} positions, over the network {@code network} builds for that many
     * positions once the arguments are checked and the memory ({@link #requireFits}, for {@code shape}) is known to
     * suffice.
     */
    private Transformer(
            Backend backend,
            ModelConfig config,
            int maxBatch,
            int contextLength,
            Backend.ForwardShape shape,
            IntFunction<Network> network) {
        this.contextLength = contextLength;
        this.config = config;
        this.backend = backend;
        this.network = network.apply(contextLength);
        this.keys = new Tensor[config.layers()];
        this.values = new Tensor[config.layers()];
        for (int l = 0; l < config.layers(); l++) {
            keys[l] = backend.allocate(contextLength, config.kvDim());
            values[l] = backend.allocate(contextLength, config.kvDim());
        }
        this.maxBatch = Math.min(maxBatch, contextLength);
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
        // What the forward passes would allocate on demand is allocated now, within the memory checked for it.
        backend.reserveForwardScratch(shape);
    }

    /**
     * Checks the batch and context sizes, then that the backend has room for what the model will allocate there, before
     * anything (a device backend's copy of the weights, {@code weightBytes} as stored, and the forward passes' scratch
     * memory for products with {@code blockWeights}) is allocated.
     *
     * @return the shapes that size the forward passes' scratch memory, for the model to reserve
     */
    private static Backend.ForwardShape requireFits(
            Backend backend,
            ModelConfig config,
            long weightBytes,
            List<Backend.BlockWeights> blockWeights,
            int maxBatch,
            int contextLength) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch (" + maxBatch + ") must be >= 1");
        }
        if (contextLength < 1 || contextLength > config.seqLen()) {
            throw new IllegalArgumentException("contextLength (" + contextLength
                    + ") must be in [1, the model's context length (config.seqLen " + config.seqLen() + ")]");
        }
        int batch = Math.min(maxBatch, contextLength);
        Backend.ForwardShape shape = new Backend.ForwardShape(
                batch,
                config.heads(),
                config.kvHeads(),
                config.headSize(),
                contextLength,
                Parameters.largestProductOperand(config, batch),
                blockWeights);
        String purpose = "a key/value cache of " + contextLength + " positions × " + config.layers()
                + " layers and the activations of batches of " + batch + " tokens";
        MemorySize bytes = memorySize(config, batch, contextLength)
                .add(1, Math.ceilDiv(backend.forwardScratchBytes(shape), Float.BYTES));
        if (backend.copiesWeights()) {
            purpose = "the weights (" + config.parameterCount() + " parameters), " + purpose;
            bytes.add(1, Math.ceilDiv(weightBytes, Float.BYTES)).add(Parameters.rotaryFloats(config, contextLength), 1);
        }
        backend.requireMemory(purpose, bytes.bytes());
        return shape;
    }

    /**
     * Returns the bytes a model allocates on its backend besides the weights: the key/value cache and the activations
     * of one batch.
     *
     * @param config the configuration
     * @param maxBatch most tokens per batch, at least 1
     * @param contextLength the positions the cache holds, at least 1
     * @return the bytes, {@link Long#MAX_VALUE} if they overflow a long
     */
    public static long memoryBytes(ModelConfig config, int maxBatch, int contextLength) {
        return memorySize(config, Math.min(maxBatch, contextLength), contextLength)
                .bytes();
    }

    /** The floats of {@link #memoryBytes} for batches of {@code batch <= contextLength} tokens. */
    private static MemorySize memorySize(ModelConfig config, long batch, int contextLength) {
        boolean llama = config.architecture() == Architecture.LLAMA;
        return new MemorySize()
                .add(2L * config.layers(), contextLength, config.kvDim())
                .add(4 * batch, config.dim())
                .add((llama ? 2 : 1) * batch, config.hiddenDim())
                .add(1, config.vocabSize());
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
    public static Transformer llama(
            Backend backend, ModelConfig config, LlamaWeights<MemorySegment> weights, int maxBatch) {
        return llama(backend, config, weights, maxBatch, config.seqLen());
    }

    /**
     * A Llama-family model whose cache holds {@code contextLength} positions.
     *
     * @param backend where the weights, the cache and the activations live
     * @param config a Llama configuration
     * @param weights its weights, kept in place by a host backend
     * @param maxBatch most tokens per batch (scratch memory grows with it); {@link #DEFAULT_MAX_BATCH} is a fair choice
     * @param contextLength the positions the cache holds, in {@code [1, config.seqLen]}: for a generation, the prompt's
     *     tokens and those to generate
     * @return the model, at position 0
     * @throws IllegalArgumentException if the configuration is not Llama's, a weight's size does not match it, or
     *     {@code contextLength} is out of range
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the cache and activations (on a device backend
     *     also the weights and rotary tables) do not fit, before anything is allocated
     */
    public static Transformer llama(
            Backend backend, ModelConfig config, LlamaWeights<MemorySegment> weights, int maxBatch, int contextLength) {
        Network.requireFamily(config, Architecture.LLAMA, weights.layers().size());
        Backend.ForwardShape shape =
                requireFits(backend, config, config.parameterCount() * Float.BYTES, List.of(), maxBatch, contextLength);
        return llamaOnBackend(
                backend,
                config,
                weights.map(config.sharedClassifier(), onBackend(backend, config)),
                maxBatch,
                contextLength,
                shape);
    }

    private static Transformer llamaOnBackend(
            Backend backend,
            ModelConfig config,
            LlamaWeights<Tensor> tensors,
            int maxBatch,
            int contextLength,
            Backend.ForwardShape shape) {
        return new Transformer(
                backend,
                config,
                maxBatch,
                contextLength,
                shape,
                positions -> Network.llama(backend, config, tensors, positions));
    }

    /**
     * A Llama-family model from a GGUF file, whose cache holds {@code contextLength} positions: float32 matrices go to
     * the backend as floats, the others (F16, BF16, Q8_0, Q4_0) in their block format, used in place.
     *
     * @param backend where the model runs; its products must take the file's formats (both backends take all)
     * @param model the open file
     * @param maxBatch most tokens per batch; {@link #DEFAULT_MAX_BATCH} is a fair choice
     * @param contextLength the positions the cache holds, in {@code [1, config.seqLen]}
     * @return the model, at position 0
     * @throws IllegalArgumentException if {@code contextLength} is out of range
     * @throws UnsupportedOperationException if the backend cannot compute with a weight's format
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the cache and activations do not fit
     */
    public static Transformer llama(Backend backend, GgufLlama model, int maxBatch, int contextLength) {
        ModelConfig config = model.config();
        // Quantized weights stay in their format on a device backend too.
        long weightBytes = model.weights().byName(config.sharedClassifier()).values().stream()
                .mapToLong(w -> w.data().byteSize())
                .sum();
        Backend.ForwardShape shape =
                requireFits(backend, config, weightBytes, blockWeights(model.weights()), maxBatch, contextLength);
        return llamaOnBackend(
                backend,
                config,
                model.weights().map(config.sharedClassifier(), (name, w) -> onBackend(backend, w)),
                maxBatch,
                contextLength,
                shape);
    }

    /** The matrices of a GGUF model in a block format that the products multiply by (the classifier included). */
    private static List<Backend.BlockWeights> blockWeights(LlamaWeights<GgufLlama.Weight> weights) {
        List<GgufLlama.Weight> products = new ArrayList<>();
        for (LlamaWeights.Layer<GgufLlama.Weight> layer : weights.layers()) {
            products.addAll(
                    List.of(layer.wq(), layer.wk(), layer.wv(), layer.wo(), layer.w1(), layer.w2(), layer.w3()));
        }
        products.add(weights.classifier());
        return products.stream()
                .filter(w -> w.type() != GgmlType.F32)
                .map(w -> new Backend.BlockWeights(WeightFormat.valueOf(w.type().name()), w.rows(), w.columns()))
                .toList();
    }

    private static Tensor onBackend(Backend backend, GgufLlama.Weight w) {
        if (w.type() == GgmlType.F32) {
            return backend.weights(w.data(), w.rows(), w.columns());
        }
        return backend.weights(
                new QuantizedMatrix(WeightFormat.valueOf(w.type().name()), w.data(), 0, w.rows(), w.columns()));
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
    public static Transformer gpt2(
            Backend backend, ModelConfig config, Gpt2Weights<MemorySegment> weights, int maxBatch) {
        return gpt2(backend, config, weights, maxBatch, config.seqLen());
    }

    /**
     * A GPT-2 model whose cache holds {@code contextLength} positions.
     *
     * @param backend where the weights, the cache and the activations live
     * @param config a GPT-2 configuration
     * @param weights its weights, kept in place by a host backend
     * @param maxBatch most tokens per batch; {@link #DEFAULT_MAX_BATCH} is a fair choice
     * @param contextLength the positions the cache holds, in {@code [1, config.seqLen]}: for a generation, the prompt's
     *     tokens and those to generate
     * @return the model, at position 0
     * @throws IllegalArgumentException if the configuration is not GPT-2's, a weight's size does not match it, or
     *     {@code contextLength} is out of range
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the cache and activations (on a device backend
     *     also the weights and rotary tables) do not fit, before anything is allocated
     */
    public static Transformer gpt2(
            Backend backend, ModelConfig config, Gpt2Weights<MemorySegment> weights, int maxBatch, int contextLength) {
        Network.requireFamily(config, Architecture.GPT2, weights.layers().size());
        Backend.ForwardShape shape =
                requireFits(backend, config, config.parameterCount() * Float.BYTES, List.of(), maxBatch, contextLength);
        Gpt2Weights<Tensor> tensors = weights.map(onBackend(backend, config));
        return new Transformer(
                backend,
                config,
                maxBatch,
                contextLength,
                shape,
                positions -> Network.gpt2(backend, config, tensors, positions));
    }

    /** Hands a named segment to the backend with its shape from {@link Parameters#of(ModelConfig)}. */
    private static BiFunction<String, MemorySegment, Tensor> onBackend(Backend backend, ModelConfig config) {
        Map<String, Parameters.Spec> specs = new HashMap<>();
        for (Parameters.Spec spec : Parameters.of(config)) {
            specs.put(spec.name(), spec);
        }
        return (name, segment) ->
                backend.weights(segment, specs.get(name).rows(), specs.get(name).cols());
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
     * Returns the positions the cache holds: at most this many tokens go through between resets.
     *
     * @return the context length, at most {@code config().seqLen()}
     */
    public int contextLength() {
        return contextLength;
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
     * @return the position, in {@code [0, contextLength()]}
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
     * @throws IllegalStateException if the tokens do not fit in the cache: {@code position() + count >
     *     contextLength()}
     */
    public Tensor forward(int[] tokens, int offset, int count) {
        check(tokens, offset, count);
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

    /**
     * Runs one batch of tokens at the current position, as {@link #forward} does, and returns the logits after every
     * one of them, as teacher forcing (a perplexity) needs them: row {@code i} predicts the token after {@code
     * tokens[offset + i]}.
     *
     * @param tokens token ids, each in {@code [0, vocabSize)}
     * @param offset index of the first token to run
     * @param count how many tokens, in {@code [1, maxBatch()]}
     * @return {@code [count, vocabSize]} logits, owned by the model and overwritten by the next call
     * @throws IllegalArgumentException if the range is not inside {@code tokens}, is longer than {@code maxBatch()},
     *     or a token id is out of range
     * @throws IllegalStateException if the tokens do not fit in the cache
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the logits of a batch do not fit, on the first
     *     call
     */
    public Tensor forwardEach(int[] tokens, int offset, int count) {
        if (count > maxBatch) {
            throw new IllegalArgumentException("count (" + count + ") must be at most maxBatch (" + maxBatch + ")");
        }
        check(tokens, offset, count);
        if (batchLogits == null) {
            backend.requireMemory(
                    "the logits of a batch of " + maxBatch + " tokens",
                    new MemorySize().add(maxBatch, config.vocabSize()).bytes());
            batchLogits = backend.allocate(maxBatch, config.vocabSize());
        }
        batch(tokens, offset, count);
        Tensor out = batchLogits.rows(0, count);
        network.head(x.rows(0, count), scratch.norm1().rows(0, count), null, null, out);
        return out;
    }

    /**
     * Returns the most tokens one batch holds, the most {@link #forwardEach} takes.
     *
     * @return the batch size, at least 1
     */
    public int maxBatch() {
        return maxBatch;
    }

    private void check(int[] tokens, int offset, int count) {
        if (count < 1 || offset < 0 || offset > tokens.length - count) {
            throw new IllegalArgumentException("offset (" + offset + ") and count (" + count
                    + ") must give a non-empty range inside tokens (length " + tokens.length + ")");
        }
        if (count > contextLength - position) {
            throw new IllegalStateException("context length exceeded: " + position + " positions used + " + count
                    + " new tokens > the cache's contextLength (" + contextLength + "; the model's seqLen is "
                    + config.seqLen() + ")");
        }
        for (int i = offset; i < offset + count; i++) {
            if (tokens[i] < 0 || tokens[i] >= config.vocabSize()) {
                throw new IllegalArgumentException(
                        "tokens[" + i + "] (" + tokens[i] + ") must be in [0, vocabSize (" + config.vocabSize() + "))");
            }
        }
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
