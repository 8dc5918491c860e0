package dev.panamax.model.testing;

import dev.panamax.model.io.Gpt2Weights;
import dev.panamax.model.io.LlamaWeights;
import dev.panamax.model.io.ModelConfig;
import java.lang.foreign.MemorySegment;

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
    public static double[][] llama(ModelConfig c, LlamaWeights w, int[] tokens) {
        int dim = c.dim();
        int hs = c.headSize();
        int kvDim = c.kvDim();
        int t = tokens.length;
        double[][][] keys = new double[c.layers()][t][];
        double[][][] values = new double[c.layers()][t][];
        double[][] logits = new double[t][];
        for (int pos = 0; pos < t; pos++) {
            double[] x = row(w.tokenEmbedding(), tokens[pos], dim);
            for (int l = 0; l < c.layers(); l++) {
                LlamaWeights.Layer layer = w.layers().get(l);
                double[] xb = rmsNorm(x, read(layer.attentionNorm()), c.normEpsilon());
                double[] q = outIn(layer.wq(), dim, dim, xb);
                double[] k = outIn(layer.wk(), kvDim, dim, xb);
                rotate(q, hs, pos, c.ropeTheta());
                rotate(k, hs, pos, c.ropeTheta());
                keys[l][pos] = k;
                values[l][pos] = outIn(layer.wv(), kvDim, dim, xb);
                double[] attended = attend(q, keys[l], values[l], pos, c.heads(), c.kvHeads(), hs);
                add(x, outIn(layer.wo(), dim, dim, attended));
                xb = rmsNorm(x, read(layer.ffnNorm()), c.normEpsilon());
                double[] gate = outIn(layer.w1(), c.hiddenDim(), dim, xb);
                double[] up = outIn(layer.w3(), c.hiddenDim(), dim, xb);
                for (int i = 0; i < gate.length; i++) {
                    gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                }
                add(x, outIn(layer.w2(), dim, c.hiddenDim(), gate));
            }
            logits[pos] = outIn(w.classifier(), c.vocabSize(), dim, rmsNorm(x, read(w.finalNorm()), c.normEpsilon()));
        }
        return logits;
    }

    /**
     * The logits after every position of a token sequence, for a GPT-2 model.
     *
     * @param c the configuration
     * @param w the weights
     * @param tokens the sequence
     * @return {@code [tokens.length][vocabSize]} logits
     */
    public static double[][] gpt2(ModelConfig c, Gpt2Weights w, int[] tokens) {
        int dim = c.dim();
        int t = tokens.length;
        double[][][] keys = new double[c.layers()][t][];
        double[][][] values = new double[c.layers()][t][];
        double[][] logits = new double[t][];
        for (int pos = 0; pos < t; pos++) {
            double[] x = row(w.tokenEmbedding(), tokens[pos], dim);
            add(x, row(w.positionEmbedding(), pos, dim));
            for (int l = 0; l < c.layers(); l++) {
                Gpt2Weights.Layer layer = w.layers().get(l);
                double[] xb = layerNorm(x, read(layer.norm1Weight()), read(layer.norm1Bias()), c.normEpsilon());
                double[] qkv = inOut(layer.attentionWeight(), read(layer.attentionBias()), dim, 3 * dim, xb);
                double[] q = java.util.Arrays.copyOfRange(qkv, 0, dim);
                keys[l][pos] = java.util.Arrays.copyOfRange(qkv, dim, 2 * dim);
                values[l][pos] = java.util.Arrays.copyOfRange(qkv, 2 * dim, 3 * dim);
                double[] attended = attend(q, keys[l], values[l], pos, c.heads(), c.heads(), c.headSize());
                add(
                        x,
                        inOut(
                                layer.attentionProjectionWeight(),
                                read(layer.attentionProjectionBias()),
                                dim,
                                dim,
                                attended));
                xb = layerNorm(x, read(layer.norm2Weight()), read(layer.norm2Bias()), c.normEpsilon());
                double[] h = inOut(layer.mlpWeight(), read(layer.mlpBias()), dim, c.hiddenDim(), xb);
                for (int i = 0; i < h.length; i++) {
                    double v = h[i];
                    h[i] = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
                }
                add(x, inOut(layer.mlpProjectionWeight(), read(layer.mlpProjectionBias()), c.hiddenDim(), dim, h));
            }
            double[] last = layerNorm(x, read(w.finalNormWeight()), read(w.finalNormBias()), c.normEpsilon());
            logits[pos] = outIn(w.tokenEmbedding(), c.vocabSize(), dim, last);
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

    private static double[] row(MemorySegment matrix, int row, int cols) {
        double[] values = new double[cols];
        for (int j = 0; j < cols; j++) {
            values[j] = matrix.getAtIndex(Segments.FLOAT, (long) row * cols + j);
        }
        return values;
    }

    /** {@code W·x} for W stored {@code [out, in]}. */
    private static double[] outIn(MemorySegment w, int out, int in, double[] x) {
        double[] y = new double[out];
        for (int i = 0; i < out; i++) {
            double sum = 0;
            for (int j = 0; j < in; j++) {
                sum += w.getAtIndex(Segments.FLOAT, (long) i * in + j) * x[j];
            }
            y[i] = sum;
        }
        return y;
    }

    /** {@code x·W + b} for W stored {@code [in, out]}. */
    private static double[] inOut(MemorySegment w, double[] bias, int in, int out, double[] x) {
        double[] y = bias.clone();
        for (int i = 0; i < in; i++) {
            for (int j = 0; j < out; j++) {
                y[j] += x[i] * w.getAtIndex(Segments.FLOAT, (long) i * out + j);
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
