package dev.panamax.model.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.kernels.Quantization;
import dev.panamax.kernels.QuantizedMatrix;
import dev.panamax.kernels.WeightFormat;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Tolerance;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.LlamaWeights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.testing.ReferenceTransformer;
import dev.panamax.model.testing.TinyModels;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * GGUF Llama models of every weight type written by {@link GgufLlama#write} and run by {@link Transformer}: an F32 file
 * holds the checkpoint's exact weights, and a model of any type gives the logits of the float64 reference over its
 * weights as decoded (so that the block formats' products, the quantized embedding lookup and the tied classifier
 * are checked, not the quantization error). Tolerance as {@link TransformerTest}'s: 1e-4 absolute plus 1e-4 relative
 * on logits of order 1, float32 rounding being about 1e-6 there.
 */
class GgufTransformerTest {
    private static final int[] TOKENS = TinyModels.tokens();

    /** Rows of 64 (two blocks) for every matrix but the down projection, whose rows of 80 fall back to F16. */
    private static final ModelConfig TIED =
            new ModelConfig(Architecture.LLAMA, 64, 80, 2, 4, 2, 61, 16, 1e-5f, 10000f, true);

    private static final ModelConfig UNTIED =
            new ModelConfig(Architecture.LLAMA, 64, 96, 2, 8, 8, 70, 16, 1e-6f, 500000f, false);

    @TempDir
    Path dir;

    @Test
    void everyTypeRunsAsItsDecodedWeightsDo() throws IOException {
        for (ModelConfig config : new ModelConfig[] {TIED, UNTIED}) {
            Path bin = dir.resolve("model.bin");
            Llama2cCheckpoint.writeRandom(bin, config, Inputs.seed("gguf " + config.hiddenDim()));
            try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(bin)) {
                for (GgmlType type : GgufLlama.COMPUTE_TYPES) {
                    Path file = dir.resolve(type + ".gguf");
                    GgufLlama.write(file, config, checkpoint.weights(), "test", Map.of(), type);
                    try (GgufLlama gguf = GgufLlama.open(file);
                            CpuBackend backend = new CpuBackend()) {
                        assertEquals(config, gguf.config());
                        if (type == GgmlType.F32) {
                            assertEquals(
                                    -1,
                                    gguf.weights()
                                            .layers()
                                            .get(1)
                                            .wk()
                                            .data()
                                            .mismatch(checkpoint
                                                    .weights()
                                                    .layers()
                                                    .get(1)
                                                    .wk()),
                                    "F32 weights are the checkpoint's bytes");
                        }
                        LlamaWeights<MemorySegment> decoded =
                                gguf.weights().map(config.sharedClassifier(), (name, w) -> decode(w));
                        double[][] expected = ReferenceTransformer.llama(config, decoded, TOKENS);
                        Transformer model = Transformer.llama(backend, gguf, 4, config.seqLen());
                        int prefill = TOKENS.length / 2;
                        assertClose(type + " prefill", expected[prefill - 1], model, model.forward(TOKENS, 0, prefill));
                        for (int i = prefill; i < TOKENS.length; i++) {
                            assertClose(type + " position " + i, expected[i], model, model.forward(TOKENS, i, 1));
                        }
                        model.reset();
                        for (int start = 0; start < TOKENS.length; start += model.maxBatch()) {
                            Tensor each = model.forwardEach(TOKENS, start, model.maxBatch());
                            for (int i = 0; i < model.maxBatch(); i++) {
                                assertClose(
                                        type + " every position, " + (start + i),
                                        expected[start + i],
                                        model,
                                        each.rows(i, 1));
                            }
                        }
                    }
                }
            }
        }
    }

    private static MemorySegment decode(GgufLlama.Weight w) {
        if (w.type() == GgmlType.F32) {
            return w.data();
        }
        QuantizedMatrix m =
                new QuantizedMatrix(WeightFormat.valueOf(w.type().name()), w.data(), 0, w.rows(), w.columns());
        MemorySegment floats = MemorySegment.ofArray(new float[w.rows() * w.columns()]);
        for (int r = 0; r < w.rows(); r++) {
            Quantization.dequantizeRow(m, r, floats, (long) r * w.columns());
        }
        return floats;
    }

    private static void assertClose(String what, double[] expected, Transformer model, Tensor logits) {
        float[] values = new float[logits.cols()];
        model.backend().read(logits, values);
        Tolerance.assertClose(what, expected, values, 1e-4, 1e-4);
    }

    @Test
    void matricesOfABlockFormatFallBackToF16WhereRowsAreNotWholeBlocks() throws IOException {
        Path bin = dir.resolve("model.bin");
        Llama2cCheckpoint.writeRandom(bin, TIED, 7);
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(bin)) {
            Path file = dir.resolve("q4.gguf");
            GgufLlama.write(file, TIED, checkpoint.weights(), "test", Map.of(), GgmlType.Q4_0);
            try (GgufLlama gguf = GgufLlama.open(file)) {
                LlamaWeights.Layer<GgufLlama.Weight> layer =
                        gguf.weights().layers().getFirst();
                assertEquals(GgmlType.Q4_0, layer.wq().type());
                assertEquals(GgmlType.Q4_0, layer.w1().type());
                assertEquals(GgmlType.F16, layer.w2().type(), "rows of 80 are not whole blocks of 32");
                assertEquals(GgmlType.F32, layer.attentionNorm().type());
                assertEquals(GgmlType.Q4_0, gguf.weights().tokenEmbedding().type());
            }
        }
    }
}
