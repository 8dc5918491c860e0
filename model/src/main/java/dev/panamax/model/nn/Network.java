package dev.panamax.model.nn;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Backend.Layout;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The layers of a decoder-only Transformer, forward and backward, for both families of {@link Architecture}: one pass
 * in which the variants differ only in the normalisation (RMSNorm or LayerNorm), the position encoding (RoPE on
 * queries and keys, or learned positions added to the embeddings), the feed-forward activation (SwiGLU or GELU), the
 * biases (none, or on every projection) and the weights' layout. Inference (with a key/value cache) and training
 * (many sequences at once, activations kept for the backward) run the same {@link #forwardBlock}; they differ only in
 * which tensors they hand it. Everything runs on a {@link Backend}.
 *
 * <p>A network over gradient tensors (built from the same names) is the shape the backward writes into: the gradient
 * of each weight lands in the tensor of the same name.
 */
public final class Network {
    /**
     * A projection {@code y = x·W (+ b)} in the network's layout.
     *
     * @param weight the matrix
     * @param bias the bias row; null where the family has none (Llama), as {@link Backend#matmul} takes it
     */
    private record Projection(Tensor weight, Tensor bias) {}

    /**
     * A normalisation's parameters.
     *
     * @param weight the scale
     * @param bias LayerNorm's shift; null for RMSNorm, which has none
     */
    private record Norm(Tensor weight, Tensor bias) {}

    /**
     * One block's tensors by role, built from a family's named layer record.
     *
     * @param up the feed-forward input projection (Llama's {@code w3}, GPT-2's {@code c_fc})
     * @param gate Llama's {@code w1}, whose SiLU multiplies {@code up}; GPT-2 has none
     * @param down the feed-forward output projection
     */
    private record Block(
            Norm norm1,
            Projection query,
            Projection key,
            Projection value,
            Projection output,
            Norm norm2,
            Projection up,
            Optional<Projection> gate,
            Projection down) {

        static Block of(LlamaWeights.Layer<Tensor> l) {
            return new Block(
                    new Norm(l.attentionNorm(), null),
                    new Projection(l.wq(), null),
                    new Projection(l.wk(), null),
                    new Projection(l.wv(), null),
                    new Projection(l.wo(), null),
                    new Norm(l.ffnNorm(), null),
                    new Projection(l.w3(), null),
                    Optional.of(new Projection(l.w1(), null)),
                    new Projection(l.w2(), null));
        }

        /** GPT-2's {@code c_attn} holds the query, key and value projections side by side: {@code [dim, 3·dim]}. */
        static Block of(Gpt2Weights.Layer<Tensor> l, int dim) {
            return new Block(
                    new Norm(l.norm1Weight(), l.norm1Bias()),
                    new Projection(
                            l.attentionWeight().columns(0, dim),
                            l.attentionBias().columns(0, dim)),
                    new Projection(
                            l.attentionWeight().columns(dim, dim),
                            l.attentionBias().columns(dim, dim)),
                    new Projection(
                            l.attentionWeight().columns(2 * dim, dim),
                            l.attentionBias().columns(2 * dim, dim)),
                    new Projection(l.attentionProjectionWeight(), l.attentionProjectionBias()),
                    new Norm(l.norm2Weight(), l.norm2Bias()),
                    new Projection(l.mlpWeight(), l.mlpBias()),
                    Optional.empty(),
                    new Projection(l.mlpProjectionWeight(), l.mlpProjectionBias()));
        }
    }

    /**
     * The activations of one block over {@code n} rows. Inference hands every block the same scratch tensors with
     * {@code input == mid == output} (the residual stream updated in place) and {@code norm1 == norm2 ==
     * projection}; training gives each block its own, so that the backward finds them.
     *
     * @param input the residual stream entering the block {@code [n, dim]}
     * @param norm1 the normalised input of the attention {@code [n, dim]}
     * @param mean1 its row means {@code [n, 1]} (LayerNorm, training), or null
     * @param rstd1 its row {@code 1/std} {@code [n, 1]} (training), or null
     * @param q the rotated queries {@code [n, dim]}
     * @param attended the attention's output {@code [n, dim]}
     * @param lse the attention's log-sum-exps {@code [n, heads]} (training), or null
     * @param projection scratch for a projection's output {@code [n, dim]}
     * @param mid the residual stream after attention {@code [n, dim]}
     * @param norm2 the normalised input of the feed-forward network {@code [n, dim]}
     * @param mean2 its row means, or null
     * @param rstd2 its row {@code 1/std}, or null
     * @param up the feed-forward's up projection {@code [n, hidden]}
     * @param gate the gate projection {@code [n, hidden]} (Llama), or null
     * @param hidden the activation's output {@code [n, hidden]}; may be {@code up} when not training
     * @param output the residual stream leaving the block {@code [n, dim]}
     */
    public record Activations(
            Tensor input,
            Tensor norm1,
            Tensor mean1,
            Tensor rstd1,
            Tensor q,
            Tensor attended,
            Tensor lse,
            Tensor projection,
            Tensor mid,
            Tensor norm2,
            Tensor mean2,
            Tensor rstd2,
            Tensor up,
            Tensor gate,
            Tensor hidden,
            Tensor output) {

        /**
         * The same activations restricted to their first {@code n} rows (null stays null).
         *
         * @param n rows
         * @return the views
         */
        public Activations firstRows(int n) {
            return new Activations(
                    first(input, n),
                    first(norm1, n),
                    first(mean1, n),
                    first(rstd1, n),
                    first(q, n),
                    first(attended, n),
                    first(lse, n),
                    first(projection, n),
                    first(mid, n),
                    first(norm2, n),
                    first(mean2, n),
                    first(rstd2, n),
                    first(up, n),
                    first(gate, n),
                    first(hidden, n),
                    first(output, n));
        }

        private static Tensor first(Tensor t, int n) {
            return t == null ? null : t.rows(0, n);
        }
    }

    /**
     * Scratch gradients of one backward pass through a block, reused by every block.
     *
     * @param norm a gradient {@code [n, dim]} with respect to a norm's output, then input
     * @param attended {@code [n, dim]}
     * @param q {@code [n, dim]}
     * @param k {@code [n, kvDim]}
     * @param v {@code [n, kvDim]}
     * @param hidden {@code [n, hidden]}
     * @param up {@code [n, hidden]}
     * @param gate {@code [n, hidden]} (Llama), or null
     */
    public record Gradients(
            Tensor norm, Tensor attended, Tensor q, Tensor k, Tensor v, Tensor hidden, Tensor up, Tensor gate) {

        /**
         * Allocates the scratch for up to {@code n} rows.
         *
         * @param backend the backend
         * @param c the configuration
         * @param n rows
         * @return the scratch
         */
        public static Gradients allocate(Backend backend, ModelConfig c, int n) {
            return new Gradients(
                    backend.allocate(n, c.dim()),
                    backend.allocate(n, c.dim()),
                    backend.allocate(n, c.dim()),
                    backend.allocate(n, c.kvDim()),
                    backend.allocate(n, c.kvDim()),
                    backend.allocate(n, c.hiddenDim()),
                    backend.allocate(n, c.hiddenDim()),
                    c.architecture() == Architecture.LLAMA ? backend.allocate(n, c.hiddenDim()) : null);
        }
    }

    private final ModelConfig config;
    private final Backend backend;
    private final boolean llama;
    private final Layout layout;
    private final Tensor tokenEmbedding;
    private final Tensor positionEmbedding;
    private final List<Block> blocks;
    private final Norm finalNorm;
    private final Tensor classifier;
    private final Backend.Rotary rotary;

    private Network(
            ModelConfig config,
            Backend backend,
            Tensor tokenEmbedding,
            Tensor positionEmbedding,
            List<Block> blocks,
            Norm finalNorm,
            Tensor classifier,
            Backend.Rotary rotary) {
        this.config = config;
        this.backend = backend;
        this.llama = config.architecture() == Architecture.LLAMA;
        this.layout = llama ? Layout.OUT_IN : Layout.IN_OUT;
        this.tokenEmbedding = tokenEmbedding;
        this.positionEmbedding = positionEmbedding;
        this.blocks = List.copyOf(blocks);
        this.finalNorm = finalNorm;
        this.classifier = classifier;
        this.rotary = rotary;
    }

    /**
     * A Llama network over its weights, or over the gradients a backward pass accumulates into.
     *
     * @param backend the backend that owns the tensors
     * @param config a Llama configuration
     * @param weights every tensor of {@link Parameters#of(ModelConfig)}, under its name
     * @param positions the positions it will run at, in {@code [1, config.seqLen]}: RoPE's tables cover these only
     * @return the network
     * @throws IllegalArgumentException if the configuration is not Llama's, a tensor is missing or has the wrong
     *     shape, or positions is out of range
     */
    public static Network llama(Backend backend, ModelConfig config, LlamaWeights<Tensor> weights, int positions) {
        require(
                config,
                Architecture.LLAMA,
                weights.layers().size(),
                weights.byName(config.sharedClassifier()),
                positions);
        List<Block> blocks = weights.layers().stream().map(Block::of).toList();
        return new Network(
                config,
                backend,
                weights.tokenEmbedding(),
                null,
                blocks,
                new Norm(weights.finalNorm(), null),
                weights.classifier(),
                backend.rotary(config.headSize(), positions, config.ropeTheta()));
    }

    /**
     * A GPT-2 network over its weights, or over the gradients a backward pass accumulates into.
     *
     * @param backend the backend that owns the tensors
     * @param config a GPT-2 configuration
     * @param weights every tensor of {@link Parameters#of(ModelConfig)}, under its name
     * @param positions the positions it will run at, in {@code [1, config.seqLen]}
     * @return the network
     * @throws IllegalArgumentException if the configuration is not GPT-2's, a tensor is missing or has the wrong
     *     shape, or positions is out of range
     */
    public static Network gpt2(Backend backend, ModelConfig config, Gpt2Weights<Tensor> weights, int positions) {
        require(config, Architecture.GPT2, weights.layers().size(), weights.byName(), positions);
        List<Block> blocks = weights.layers().stream()
                .map(layer -> Block.of(layer, config.dim()))
                .toList();
        return new Network(
                config,
                backend,
                weights.tokenEmbedding(),
                weights.positionEmbedding(),
                blocks,
                new Norm(weights.finalNormWeight(), weights.finalNormBias()),
                weights.tokenEmbedding(),
                null);
    }

    /**
     * A network over named tensors, as a trainer holds its parameters and their gradients: {@link
     * LlamaWeights#fromNames} or {@link Gpt2Weights#fromNames} puts them in their places.
     *
     * @param backend the backend that owns the tensors
     * @param config the configuration
     * @param tensors every tensor of {@link Parameters#of(ModelConfig)} under its name
     * @param positions the positions it will run at, in {@code [1, config.seqLen]}: RoPE's tables cover these only
     * @return the network
     * @throws IllegalArgumentException if a tensor is missing or has the wrong shape, or positions is out of range
     */
    public static Network of(Backend backend, ModelConfig config, Map<String, Tensor> tensors, int positions) {
        // Checked by name first: a missing output.weight would otherwise become the shared token embedding.
        require(config, config.architecture(), config.layers(), tensors, positions);
        return config.architecture() == Architecture.LLAMA
                ? llama(backend, config, LlamaWeights.fromNames(config.layers(), tensors), positions)
                : gpt2(backend, config, Gpt2Weights.fromNames(config.layers(), tensors), positions);
    }

    /**
     * Checks that weights of a family and number of layers are for a configuration, before anything is built from
     * them.
     *
     * @param config the configuration
     * @param architecture the weights' family
     * @param layers the weights' number of blocks
     * @throws IllegalArgumentException if the family or the number of layers is not the configuration's
     */
    public static void requireFamily(ModelConfig config, Architecture architecture, int layers) {
        if (config.architecture() != architecture) {
            throw new IllegalArgumentException(
                    "config.architecture (" + config.architecture() + ") must be " + architecture);
        }
        if (layers != config.layers()) {
            throw new IllegalArgumentException(
                    "weights.layers (" + layers + ") must number config.layers (" + config.layers() + ")");
        }
    }

    /** Checks the family, the number of layers, every tensor's presence and shape, and the positions. */
    private static void require(
            ModelConfig config, Architecture architecture, int layers, Map<String, Tensor> tensors, int positions) {
        requireFamily(config, architecture, layers);
        if (positions < 1 || positions > config.seqLen()) {
            throw new IllegalArgumentException(
                    "positions (" + positions + ") must be in [1, config.seqLen (" + config.seqLen() + ")]");
        }
        for (Parameters.Spec spec : Parameters.of(config)) {
            Tensor t = tensors.get(spec.name());
            if (t == null) {
                throw new IllegalArgumentException("missing tensor \"" + spec.name() + "\" of shape [" + spec.rows()
                        + ", " + spec.cols() + "] for " + config.architecture());
            }
            if (t.rows() != spec.rows() || t.cols() != spec.cols()) {
                throw new IllegalArgumentException("tensor \"" + spec.name() + "\" has shape [" + t.rows() + ", "
                        + t.cols() + "], expected [" + spec.rows() + ", " + spec.cols() + "]");
            }
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
     * Allocates one block's activations for training over {@code n} rows: its own tensors for everything the
     * backward reads, {@code input} and {@code output} as given (the neighbours' share them) and {@code projection}
     * as given (scratch shared by all blocks).
     *
     * @param input the residual stream entering the block
     * @param output the residual stream leaving it
     * @param projection shared scratch {@code [n, dim]}
     * @return the activations
     */
    public Activations trainingActivations(Tensor input, Tensor output, Tensor projection) {
        int n = input.rows();
        int d = config.dim();
        int h = config.hiddenDim();
        return new Activations(
                input,
                backend.allocate(n, d),
                llama ? null : backend.allocate(n, 1),
                backend.allocate(n, 1),
                backend.allocate(n, d),
                backend.allocate(n, d),
                backend.allocate(n, config.heads()),
                projection,
                backend.allocate(n, d),
                backend.allocate(n, d),
                llama ? null : backend.allocate(n, 1),
                backend.allocate(n, 1),
                backend.allocate(n, h),
                llama ? backend.allocate(n, h) : null,
                backend.allocate(n, h),
                output);
    }

    /**
     * Gathers the embeddings of {@code n} tokens (and adds their positions' embeddings, for GPT-2): {@code sequences}
     * sequences of {@code n / sequences} tokens each, every one starting at {@code position}.
     *
     * @param tokens token ids, checked by the caller
     * @param offset index of the first
     * @param sequences how many sequences the rows hold
     * @param position the position of each sequence's first token
     * @param x the output {@code [n, dim]}
     */
    public void embed(int[] tokens, int offset, int sequences, int position, Tensor x) {
        backend.embedding(tokens, offset, tokenEmbedding, x);
        if (positionEmbedding != null) {
            int t = x.rows() / sequences;
            for (int s = 0; s < sequences; s++) {
                Tensor rows = x.rows(s * t, t);
                backend.add(rows, positionEmbedding.rows(position, t), rows);
            }
        }
    }

    /**
     * The gradient of {@link #embed} at position 0, added to {@code gradients}' embedding tables.
     *
     * @param gradients the network of gradient tensors
     * @param tokens the forward's token ids
     * @param offset index of the first
     * @param sequences the forward's sequences
     * @param dx the gradient with respect to the embeddings {@code [n, dim]}
     */
    public void embedBackward(Network gradients, int[] tokens, int offset, int sequences, Tensor dx) {
        backend.embeddingBackward(tokens, offset, dx, gradients.tokenEmbedding);
        if (positionEmbedding != null) {
            int t = dx.rows() / sequences;
            Tensor dPositions = gradients.positionEmbedding.rows(0, t);
            for (int s = 0; s < sequences; s++) {
                backend.add(dPositions, dx.rows(s * t, t), dPositions);
            }
        }
    }

    /**
     * Runs block {@code l} over the rows of {@code a}: {@code sequences} sequences at {@code position}, whose keys and
     * values go to {@code keys}/{@code values} and are attended to there. With one sequence these are a cache with
     * room for the context (rows {@code position…position + n} written); with several they hold exactly the new rows
     * and the position must be 0.
     *
     * @param l the block
     * @param a the activations
     * @param keys the key store {@code [rows, kvDim]}
     * @param values the value store, shaped as keys
     * @param sequences how many sequences the rows hold
     * @param position the position of each sequence's first row
     */
    public void forwardBlock(int l, Activations a, Tensor keys, Tensor values, int sequences, int position) {
        Block b = blocks.get(l);
        int n = a.input.rows();
        if (sequences > 1 && (position != 0 || keys.rows() != n)) {
            throw new IllegalArgumentException("several sequences (" + sequences + ") need position 0 (not " + position
                    + ") and keys of exactly their rows (" + n + ", not " + keys.rows() + ")");
        }
        Tensor k = sequences == 1 ? keys.rows(position, n) : keys;
        Tensor v = sequences == 1 ? values.rows(position, n) : values;
        norm(a.input, b.norm1, a.norm1, a.mean1, a.rstd1);
        project(a.norm1, b.query, a.q);
        project(a.norm1, b.key, k);
        project(a.norm1, b.value, v);
        if (rotary != null) {
            int t = n / sequences;
            for (int s = 0; s < sequences; s++) {
                backend.rope(rotary, a.q.rows(s * t, t), config.heads(), position);
                backend.rope(rotary, k.rows(s * t, t), config.kvHeads(), position);
            }
        }
        backend.attention(a.q, keys, values, config.heads(), config.kvHeads(), sequences, position, a.attended, a.lse);
        project(a.attended, b.output, a.projection);
        backend.add(a.input, a.projection, a.mid);
        norm(a.mid, b.norm2, a.norm2, a.mean2, a.rstd2);
        project(a.norm2, b.up, a.up);
        if (b.gate.isPresent()) {
            project(a.norm2, b.gate.get(), a.gate);
            backend.swiglu(a.gate, a.up, a.hidden);
        } else {
            backend.gelu(a.up, a.hidden);
        }
        project(a.hidden, b.down, a.projection);
        backend.add(a.mid, a.projection, a.output);
    }

    /**
     * The backward of {@link #forwardBlock} for a training batch (position 0): adds every weight's gradient to
     * {@code gradients} and turns {@code dx} from the gradient with respect to the block's output into the gradient
     * with respect to its input.
     *
     * @param gradients the network of gradient tensors
     * @param l the block
     * @param a the forward's activations
     * @param keys the forward's keys
     * @param values the forward's values
     * @param sequences the forward's sequences
     * @param dx on entry the gradient with respect to {@code a.output()}, on return with respect to {@code a.input()}
     * @param g scratch gradients
     */
    public void backwardBlock(
            Network gradients,
            int l,
            Activations a,
            Tensor keys,
            Tensor values,
            int sequences,
            Tensor dx,
            Gradients g) {
        Block b = blocks.get(l);
        Block db = gradients.blocks.get(l);
        int n = dx.rows();
        Tensor dNorm = g.norm.rows(0, n);
        Tensor dHidden = g.hidden.rows(0, n);
        Tensor dUp = g.up.rows(0, n);
        // Feed-forward: output = mid + down(act(up(norm2(mid)))).
        projectBackward(a.hidden, b.down, dx, dHidden, false, db.down);
        if (b.gate.isPresent()) {
            Tensor dGate = g.gate.rows(0, n);
            backend.swigluBackward(a.gate, a.up, dHidden, dGate, dUp);
            projectBackward(a.norm2, b.up, dUp, dNorm, false, db.up);
            projectBackward(a.norm2, b.gate.get(), dGate, dNorm, true, db.gate.get());
        } else {
            backend.geluBackward(a.up, dHidden, dUp);
            projectBackward(a.norm2, b.up, dUp, dNorm, false, db.up);
        }
        normBackward(a.mid, b.norm2, a.mean2, a.rstd2, dNorm, db.norm2);
        backend.add(dx, dNorm, dx);
        // Attention: mid = input + wo(attention(rope(wq·x), rope(wk·x), wv·x)) with x = norm1(input).
        Tensor dAttended = g.attended.rows(0, n);
        Tensor dq = g.q.rows(0, n);
        Tensor dk = g.k.rows(0, n);
        Tensor dv = g.v.rows(0, n);
        projectBackward(a.attended, b.output, dx, dAttended, false, db.output);
        backend.attentionBackward(
                a.q,
                keys,
                values,
                a.attended,
                a.lse,
                dAttended,
                config.heads(),
                config.kvHeads(),
                sequences,
                dq,
                dk,
                dv);
        if (rotary != null) {
            int t = n / sequences;
            for (int s = 0; s < sequences; s++) {
                backend.ropeBackward(rotary, dq.rows(s * t, t), config.heads(), 0);
                backend.ropeBackward(rotary, dk.rows(s * t, t), config.kvHeads(), 0);
            }
        }
        projectBackward(a.norm1, b.query, dq, dNorm, false, db.query);
        projectBackward(a.norm1, b.key, dk, dNorm, true, db.key);
        projectBackward(a.norm1, b.value, dv, dNorm, true, db.value);
        normBackward(a.input, b.norm1, a.mean1, a.rstd1, dNorm, db.norm1);
        backend.add(dx, dNorm, dx);
    }

    /**
     * The final norm and the classifier: {@code logits = norm(x)·Eᵀ}.
     *
     * @param x the last block's output {@code [n, dim]}
     * @param normed where the normalised rows go {@code [n, dim]}
     * @param mean row means to keep (LayerNorm, training), or null
     * @param rstd row {@code 1/std} to keep (training), or null
     * @param logits the output {@code [n, vocab]}
     */
    public void head(Tensor x, Tensor normed, Tensor mean, Tensor rstd, Tensor logits) {
        norm(x, finalNorm, normed, mean, rstd);
        backend.matmul(normed, classifier, Layout.OUT_IN, null, logits);
    }

    /**
     * The backward of {@link #head}.
     *
     * @param gradients the network of gradient tensors
     * @param x the forward's input
     * @param normed the forward's normalised rows
     * @param mean the forward's means, or null
     * @param rstd the forward's rstd
     * @param dlogits the gradient with respect to the logits
     * @param dx the gradient with respect to x, written {@code [n, dim]}
     */
    public void headBackward(
            Network gradients, Tensor x, Tensor normed, Tensor mean, Tensor rstd, Tensor dlogits, Tensor dx) {
        backend.matmulBackward(normed, classifier, Layout.OUT_IN, dlogits, dx, false, gradients.classifier, null);
        normBackward(x, finalNorm, mean, rstd, dx, gradients.finalNorm);
    }

    private void project(Tensor in, Projection p, Tensor out) {
        backend.matmul(in, p.weight, layout, p.bias, out);
    }

    /** A projection's backward: adds to {@code dp}'s weight and bias, writes or (when {@code accumulate}) adds dx. */
    private void projectBackward(Tensor in, Projection p, Tensor dy, Tensor dx, boolean accumulate, Projection dp) {
        backend.matmulBackward(in, p.weight, layout, dy, dx, accumulate, dp.weight, dp.bias);
    }

    private void norm(Tensor in, Norm n, Tensor out, Tensor mean, Tensor rstd) {
        if (llama) {
            backend.rmsNorm(in, n.weight, config.normEpsilon(), out, rstd);
        } else {
            backend.layerNorm(in, n.weight, n.bias, config.normEpsilon(), out, mean, rstd);
        }
    }

    /** A norm's backward, in place on {@code d}. */
    private void normBackward(Tensor in, Norm n, Tensor mean, Tensor rstd, Tensor d, Norm dn) {
        if (llama) {
            backend.rmsNormBackward(in, n.weight, rstd, d, d, dn.weight);
        } else {
            backend.layerNormBackward(in, n.weight, mean, rstd, d, d, dn.weight, dn.bias);
        }
    }
}
