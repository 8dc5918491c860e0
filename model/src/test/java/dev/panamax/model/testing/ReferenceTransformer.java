package dev.panamax.model.testing;

import dev.panamax.model.nn.Gpt2Weights;
import dev.panamax.model.nn.LlamaWeights;
import dev.panamax.model.nn.ModelConfig;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Plain float64 forward passes of Llama and GPT-2, written from the papers' and llama2.c's definitions independently of
 * the model's code: no cache, every position recomputed from scratch, one token at a time. The reference the
 * Transformer's logits are checked against.
 */
public final class ReferenceTransformer {
    private ReferenceTransformer() {}

    /**
     * The logits after every position of a token sequence, for a Llama model.
     *
     * @param c the configuration
     * @param w the weights
     * @param tokens the sequence
     * @return {@code [tokens.length][vocabSize]} logits
     */
    public static double[][] llama(ModelConfig c, LlamaWeights<MemorySegment> w, int[] tokens) {
        return logits(c, toDoubles(w.byName(c.sharedClassifier())), tokens);
    }

    /**
     * The logits after every position of a token sequence, for a GPT-2 model.
     *
     * @param c the configuration
     * @param w the weights
     * @param tokens the sequence
     * @return {@code [tokens.length][vocabSize]} logits
     */
    public static double[][] gpt2(ModelConfig c, Gpt2Weights<MemorySegment> w, int[] tokens) {
        return logits(c, toDoubles(w.byName()), tokens);
    }

    /**
     * Converts named float32 segments to float64 arrays, the form {@link #logits} takes.
     *
     * @param named name → little-endian floats
     * @return name → values
     */
    public static Map<String, double[]> toDoubles(Map<String, MemorySegment> named) {
        Map<String, double[]> p = new HashMap<>();
        named.forEach((name, segment) -> p.put(name, read(segment)));
        return p;
    }

    /**
     * The mean cross-entropy of sequences of {@code seqLen} tokens, each predicting its targets, as training
     * measures it.
     *
     * @param c the configuration
     * @param p the weights under their {@code Parameters} names
     * @param inputs sequences one after the other
     * @param targets the token after each input
     * @param seqLen tokens per sequence
     * @return the mean loss over all tokens
     */
    public static double loss(ModelConfig c, Map<String, double[]> p, int[] inputs, int[] targets, int seqLen) {
        double sum = 0;
        for (int s = 0; s < inputs.length / seqLen; s++) {
            double[][] logits = logits(c, p, Arrays.copyOfRange(inputs, s * seqLen, (s + 1) * seqLen));
            for (int t = 0; t < seqLen; t++) {
                double max = Double.NEGATIVE_INFINITY;
                for (double v : logits[t]) {
                    max = Math.max(max, v);
                }
                double exp = 0;
                for (double v : logits[t]) {
                    exp += Math.exp(v - max);
                }
                sum += max + Math.log(exp) - logits[t][targets[s * seqLen + t]];
            }
        }
        return sum / inputs.length;
    }

    /**
     * The logits after every position of a token sequence, for either family, from weights under the names
     * {@code dev.panamax.model.nn.Parameters} lists.
     *
     * @param c the configuration
     * @param p name → values
     * @param tokens the sequence
     * @return {@code [tokens.length][vocabSize]} logits
     */
    public static double[][] logits(ModelConfig c, Map<String, double[]> p, int[] tokens) {
        boolean llama = c.architecture() == ModelConfig.Architecture.LLAMA;
        int dim = c.dim();
        int hs = c.headSize();
        int kvDim = c.kvDim();
        int t = tokens.length;
        double[][][] keys = new double[c.layers()][t][];
        double[][][] values = new double[c.layers()][t][];
        double[][] logits = new double[t][];
        double[] embedding = p.get(llama ? "tok_embeddings.weight" : "wte.weight");
        for (int pos = 0; pos < t; pos++) {
            double[] x = Arrays.copyOfRange(embedding, tokens[pos] * dim, (tokens[pos] + 1) * dim);
            if (!llama) {
                add(x, Arrays.copyOfRange(p.get("wpe.weight"), pos * dim, (pos + 1) * dim));
            }
            for (int l = 0; l < c.layers(); l++) {
                double[] attended;
                if (llama) {
                    String n = "layers." + l + ".";
                    double[] xb = rmsNorm(x, p.get(n + "attention_norm.weight"), c.normEpsilon());
                    double[] q = outIn(p.get(n + "attention.wq.weight"), dim, dim, xb);
                    double[] k = outIn(p.get(n + "attention.wk.weight"), kvDim, dim, xb);
                    rotate(q, hs, pos, c.ropeTheta());
                    rotate(k, hs, pos, c.ropeTheta());
                    keys[l][pos] = k;
                    values[l][pos] = outIn(p.get(n + "attention.wv.weight"), kvDim, dim, xb);
                    attended = attend(q, keys[l], values[l], pos, c.heads(), c.kvHeads(), hs);
                    add(x, outIn(p.get(n + "attention.wo.weight"), dim, dim, attended));
                    xb = rmsNorm(x, p.get(n + "ffn_norm.weight"), c.normEpsilon());
                    double[] gate = outIn(p.get(n + "feed_forward.w1.weight"), c.hiddenDim(), dim, xb);
                    double[] up = outIn(p.get(n + "feed_forward.w3.weight"), c.hiddenDim(), dim, xb);
                    for (int i = 0; i < gate.length; i++) {
                        gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                    }
                    add(x, outIn(p.get(n + "feed_forward.w2.weight"), dim, c.hiddenDim(), gate));
                } else {
                    String n = "h." + l + ".";
                    double[] xb = layerNorm(x, p.get(n + "ln_1.weight"), p.get(n + "ln_1.bias"), c.normEpsilon());
                    double[] qkv =
                            inOut(p.get(n + "attn.c_attn.weight"), p.get(n + "attn.c_attn.bias"), dim, 3 * dim, xb);
                    double[] q = Arrays.copyOfRange(qkv, 0, dim);
                    keys[l][pos] = Arrays.copyOfRange(qkv, dim, 2 * dim);
                    values[l][pos] = Arrays.copyOfRange(qkv, 2 * dim, 3 * dim);
                    attended = attend(q, keys[l], values[l], pos, c.heads(), c.heads(), hs);
                    add(x, inOut(p.get(n + "attn.c_proj.weight"), p.get(n + "attn.c_proj.bias"), dim, dim, attended));
                    xb = layerNorm(x, p.get(n + "ln_2.weight"), p.get(n + "ln_2.bias"), c.normEpsilon());
                    double[] h =
                            inOut(p.get(n + "mlp.c_fc.weight"), p.get(n + "mlp.c_fc.bias"), dim, c.hiddenDim(), xb);
                    for (int i = 0; i < h.length; i++) {
                        double v = h[i];
                        h[i] = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
                    }
                    add(x, inOut(p.get(n + "mlp.c_proj.weight"), p.get(n + "mlp.c_proj.bias"), c.hiddenDim(), dim, h));
                }
            }
            double[] last = llama
                    ? rmsNorm(x, p.get("norm.weight"), c.normEpsilon())
                    : layerNorm(x, p.get("ln_f.weight"), p.get("ln_f.bias"), c.normEpsilon());
            double[] classifier = llama && !c.sharedClassifier() ? p.get("output.weight") : embedding;
            logits[pos] = outIn(classifier, c.vocabSize(), dim, last);
        }
        return logits;
    }

    private static double[] read(MemorySegment segment) {
        double[] values = new double[(int) (segment.byteSize() / Float.BYTES)];
        for (int i = 0; i < values.length; i++) {
            values[i] = segment.getAtIndex(Segments.FLOAT, i);
        }
        return values;
    }

    /** {@code W·x} for W stored {@code [out, in]}. */
    private static double[] outIn(double[] w, int out, int in, double[] x) {
        double[] y = new double[out];
        for (int i = 0; i < out; i++) {
            double sum = 0;
            for (int j = 0; j < in; j++) {
                sum += w[i * in + j] * x[j];
            }
            y[i] = sum;
        }
        return y;
    }

    /** {@code x·W + b} for W stored {@code [in, out]}. */
    private static double[] inOut(double[] w, double[] bias, int in, int out, double[] x) {
        double[] y = bias.clone();
        for (int i = 0; i < in; i++) {
            for (int j = 0; j < out; j++) {
                y[j] += x[i] * w[i * out + j];
            }
        }
        return y;
    }

    private static void add(double[] x, double[] y) {
        for (int i = 0; i < x.length; i++) {
            x[i] += y[i];
        }
    }

    private static double[] rmsNorm(double[] x, double[] weight, double epsilon) {
        double squares = 0;
        for (double v : x) {
            squares += v * v;
        }
        double scale = 1 / Math.sqrt(squares / x.length + epsilon);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = x[i] * scale * weight[i];
        }
        return y;
    }

    private static double[] layerNorm(double[] x, double[] weight, double[] bias, double epsilon) {
        double mean = 0;
        for (double v : x) {
            mean += v / x.length;
        }
        double variance = 0;
        for (double v : x) {
            variance += (v - mean) * (v - mean) / x.length;
        }
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = (x[i] - mean) / Math.sqrt(variance + epsilon) * weight[i] + bias[i];
        }
        return y;
    }

    /** RoPE as llama2.c: each head's pairs (2k, 2k+1) rotated by pos·theta^(-2k/headSize). */
    private static void rotate(double[] v, int headSize, int pos, double theta) {
        for (int i = 0; i < v.length; i += 2) {
            double angle = pos * Math.pow(theta, -(double) (i % headSize) / headSize);
            double a = v[i];
            double b = v[i + 1];
            v[i] = a * Math.cos(angle) - b * Math.sin(angle);
            v[i + 1] = a * Math.sin(angle) + b * Math.cos(angle);
        }
    }

    /** Causal softmax attention of one query over the keys and values at positions 0..pos, head by head. */
    private static double[] attend(
            double[] q, double[][] keys, double[][] values, int pos, int heads, int kvHeads, int hs) {
        double[] out = new double[q.length];
        for (int h = 0; h < heads; h++) {
            int kvh = h / (heads / kvHeads);
            double[] scores = new double[pos + 1];
            double max = Double.NEGATIVE_INFINITY;
            for (int s = 0; s <= pos; s++) {
                double dot = 0;
                for (int i = 0; i < hs; i++) {
                    dot += q[h * hs + i] * keys[s][kvh * hs + i];
                }
                scores[s] = dot / Math.sqrt(hs);
                max = Math.max(max, scores[s]);
            }
            double sum = 0;
            for (int s = 0; s <= pos; s++) {
                scores[s] = Math.exp(scores[s] - max);
                sum += scores[s];
            }
            for (int s = 0; s <= pos; s++) {
                for (int i = 0; i < hs; i++) {
                    out[h * hs + i] += scores[s] / sum * values[s][kvh * hs + i];
                }
            }
        }
        return out;
    }
}
