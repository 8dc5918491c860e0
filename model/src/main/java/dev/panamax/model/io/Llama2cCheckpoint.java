package dev.panamax.model.io;

import dev.panamax.model.nn.LlamaWeights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A llama2.c checkpoint ({@code .bin}, the legacy format {@code run.c} reads), memory-mapped: a header of seven
 * little-endian int32 ({@code dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}; a negative
 * vocabulary size means the classifier is not shared) and then float32 weights, each kind for all layers in turn.
 * Opening checks the header and that the file has exactly the length it implies, so the weights are never read out
 * of bounds; closing unmaps the file, after which the weights must not be used.
 */
public final class Llama2cCheckpoint implements AutoCloseable {
    private static final int HEADER_BYTES = 7 * Integer.BYTES;
    private static final int EXPORT_MAGIC = 0x616b3432; // "ak42": llama2.c's newer export.py formats
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final float NORM_EPSILON = 1e-5f; // run.c's constants, not stored in the file
    private static final float ROPE_THETA = 10000f;
    private static final int CHUNK_FLOATS = 1 << 20;
    /**
     * The most layers a header may give, as for GGUF's {@code llama.block_count}: tiny layers make a valid file of
     * millions of them, whose slicing alone (nine views a layer) would take gigabytes of heap.
     */
    private static final int MAX_LAYERS = 1 << 16;

    /** The tensors of the file, in file order; per-layer parts hold that tensor for every layer in turn. */
    private enum Part {
        TOKEN_EMBEDDING,
        ATTENTION_NORM,
        WQ,
        WK,
        WV,
        WO,
        FFN_NORM,
        W1,
        W2,
        W3,
        FINAL_NORM,
        FREQ_CIS_REAL, // legacy RoPE tables that run.c skips; written so that older readers find them
        FREQ_CIS_IMAG,
        CLASSIFIER;

        boolean perLayer() {
            return ordinal() >= ATTENTION_NORM.ordinal() && ordinal() <= W3.ordinal();
        }

        boolean isNorm() {
            return this == ATTENTION_NORM || this == FFN_NORM || this == FINAL_NORM;
        }

        /** Elements of one instance of this part (one layer's, for per-layer parts); 0 if absent. */
        long elements(ModelConfig c) {
            long dim = c.dim();
            return switch (this) {
                case TOKEN_EMBEDDING -> c.vocabSize() * dim;
                case ATTENTION_NORM, FFN_NORM, FINAL_NORM -> dim;
                case WQ, WO -> dim * dim;
                case WK, WV -> c.kvDim() * dim;
                case W1, W2, W3 -> c.hiddenDim() * dim;
                case FREQ_CIS_REAL, FREQ_CIS_IMAG -> (long) c.seqLen() * (c.headSize() / 2);
                case CLASSIFIER -> c.sharedClassifier() ? 0 : c.vocabSize() * dim;
            };
        }

        long count(ModelConfig c) {
            return perLayer() ? c.layers() : 1;
        }
    }

    /** Fills one chunk of a part's values for the writer. */
    @FunctionalInterface
    private interface Content {
        /**
         * @param part the part
         * @param layer the layer, 0 for parts that are not per layer
         * @param first the index of the first element of the chunk within that instance of the part
         * @param target where to store the chunk's values as little-endian float32
         */
        void fill(Part part, int layer, long first, MemorySegment target);
    }

    private final Path file;
    private final Arena arena;
    private final ModelConfig config;
    private final LlamaWeights<MemorySegment> weights;

    private Llama2cCheckpoint(Path file, Arena arena, ModelConfig config, LlamaWeights<MemorySegment> weights) {
        this.file = file;
        this.arena = arena;
        this.config = config;
        this.weights = weights;
    }

    /**
     * Opens and memory-maps a checkpoint, checking its header and length first.
     *
     * @param file the {@code .bin} file
     * @return the open checkpoint; close it to unmap the file
     * @throws ModelFormatException if the header is invalid, the file is not exactly as long as the header implies, or
     *     it is not a regular file (a FIFO would block the reader)
     * @throws java.nio.file.NoSuchFileException if there is no such file
     * @throws IOException if the file cannot be read
     */
    public static Llama2cCheckpoint open(Path file) throws IOException {
        BoundedFiles.requireRegularFile(file, "llama2.c checkpoint");
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < HEADER_BYTES) {
                throw new ModelFormatException(
                        file,
                        "llama2.c checkpoint of " + size + " bytes is shorter than its " + HEADER_BYTES
                                + "-byte header");
            }
            ModelConfig config = config(file, channel.map(FileChannel.MapMode.READ_ONLY, 0, HEADER_BYTES));
            long expected;
            try {
                expected = fileSize(config);
            } catch (ArithmeticException e) {
                throw new ModelFormatException(file, "header (" + describe(config) + ") implies more than 2^63 bytes");
            }
            if (size != expected) {
                throw new ModelFormatException(
                        file,
                        "llama2.c checkpoint is " + size + " bytes but its header (" + describe(config) + ") implies "
                                + expected + " bytes; the file is " + (size < expected ? "truncated" : "oversized")
                                + " or not a legacy llama2.c checkpoint");
            }
            Arena arena = Arena.ofShared();
            try {
                MemorySegment mapped = Channels.mapWeights(channel, 0, size, arena);
                return new Llama2cCheckpoint(file, arena, config, slice(mapped, config));
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw e;
            }
        }
    }

    private static ModelConfig config(Path file, ByteBuffer header) throws ModelFormatException {
        header.order(ByteOrder.LITTLE_ENDIAN);
        int[] h = new int[7];
        for (int i = 0; i < h.length; i++) {
            h[i] = header.getInt();
        }
        if (h[0] == EXPORT_MAGIC) {
            throw new ModelFormatException(
                    file,
                    "starts with the magic \"ak42\" of llama2.c's versioned export format; only the legacy format"
                            + " (export.py --version 0) that run.c reads is supported");
        }
        if (h[5] == Integer.MIN_VALUE) {
            throw new ModelFormatException(file, "invalid llama2.c header: vocab_size " + h[5]);
        }
        if (h[2] > MAX_LAYERS) {
            throw new ModelFormatException(
                    file, "invalid llama2.c header: n_layers " + h[2] + " is over " + MAX_LAYERS + ", the most read");
        }
        try {
            return new ModelConfig(
                    Architecture.LLAMA,
                    h[0],
                    h[1],
                    h[2],
                    h[3],
                    h[4],
                    Math.abs(h[5]),
                    h[6],
                    NORM_EPSILON,
                    ROPE_THETA,
                    h[5] > 0);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, "invalid llama2.c header: " + e.getMessage(), e);
        }
    }

    private static String describe(ModelConfig c) {
        return "dim " + c.dim() + ", hidden_dim " + c.hiddenDim() + ", n_layers " + c.layers() + ", n_heads "
                + c.heads() + ", n_kv_heads " + c.kvHeads() + ", vocab_size "
                + (c.sharedClassifier() ? c.vocabSize() : -c.vocabSize()) + ", seq_len " + c.seqLen();
    }

    /**
     * Returns the exact length of a checkpoint file for a configuration.
     *
     * @param config a Llama configuration
     * @return its length in bytes
     * @throws ArithmeticException if it does not fit in a long
     */
    public static long fileSize(ModelConfig config) {
        long floats = 0;
        for (Part part : Part.values()) {
            floats = Math.addExact(floats, Math.multiplyExact(part.elements(config), part.count(config)));
        }
        return Math.addExact(HEADER_BYTES, Math.multiplyExact(floats, Float.BYTES));
    }

    private static LlamaWeights<MemorySegment> slice(MemorySegment mapped, ModelConfig config) {
        MemorySegment[][] parts = new MemorySegment[Part.values().length][];
        long offset = HEADER_BYTES;
        for (Part part : Part.values()) {
            long bytes = part.elements(config) * Float.BYTES;
            parts[part.ordinal()] = new MemorySegment[(int) part.count(config)];
            for (int i = 0; i < part.count(config); i++) {
                parts[part.ordinal()][i] = mapped.asSlice(offset, bytes);
                offset += bytes;
            }
        }
        List<LlamaWeights.Layer<MemorySegment>> layers = new ArrayList<>();
        for (int l = 0; l < config.layers(); l++) {
            layers.add(new LlamaWeights.Layer<>(
                    parts[Part.ATTENTION_NORM.ordinal()][l],
                    parts[Part.WQ.ordinal()][l],
                    parts[Part.WK.ordinal()][l],
                    parts[Part.WV.ordinal()][l],
                    parts[Part.WO.ordinal()][l],
                    parts[Part.FFN_NORM.ordinal()][l],
                    parts[Part.W1.ordinal()][l],
                    parts[Part.W2.ordinal()][l],
                    parts[Part.W3.ordinal()][l]));
        }
        MemorySegment embedding = parts[Part.TOKEN_EMBEDDING.ordinal()][0];
        return new LlamaWeights<>(
                embedding,
                layers,
                parts[Part.FINAL_NORM.ordinal()][0],
                config.sharedClassifier() ? embedding : parts[Part.CLASSIFIER.ordinal()][0]);
    }

    /**
     * Returns the configuration from the header, with run.c's fixed RMSNorm epsilon (1e-5) and RoPE base (10000).
     *
     * @return the configuration
     */
    public ModelConfig config() {
        return config;
    }

    /**
     * Returns the weights: read-only slices of the mapped file, valid until {@link #close()}.
     *
     * @return the weights
     */
    public LlamaWeights<MemorySegment> weights() {
        return weights;
    }

    /**
     * Returns the file this checkpoint was read from.
     *
     * @return the path
     */
    public Path file() {
        return file;
    }

    /** Unmaps the file; the weights must not be used afterwards. */
    @Override
    public void close() {
        arena.close();
    }

    /**
     * Writes a checkpoint.
     *
     * @param file the file to create or replace
     * @param config a Llama configuration
     * @param weights weights of the shapes the configuration implies, as little-endian float32
     * @throws IllegalArgumentException if the configuration is not Llama's or a weight has the wrong size
     * @throws IOException if the file cannot be written
     */
    public static void write(Path file, ModelConfig config, LlamaWeights<MemorySegment> weights) throws IOException {
        requireLlama(config);
        if (weights.layers().size() != config.layers()) {
            throw new IllegalArgumentException(
                    "weights have " + weights.layers().size() + " layers, the configuration " + config.layers());
        }
        if (config.sharedClassifier() && !weights.classifier().equals(weights.tokenEmbedding())) {
            throw new IllegalArgumentException("the configuration shares the classifier but the weights do not");
        }
        for (Part part : Part.values()) {
            for (int l = 0; l < part.count(config); l++) {
                MemorySegment tensor = tensor(weights, part, l);
                long expected = part.elements(config) * Float.BYTES;
                if (tensor != null && expected > 0 && tensor.byteSize() != expected) {
                    throw new IllegalArgumentException(part + (part.perLayer() ? " of layer " + l : "") + " has "
                            + tensor.byteSize() + " bytes, expected " + expected);
                }
            }
        }
        write(file, config, (part, layer, first, target) -> {
            MemorySegment tensor = tensor(weights, part, layer);
            if (tensor == null) {
                fillRopeTable(config, part, first, target);
            } else {
                MemorySegment.copy(tensor, first * Float.BYTES, target, 0, target.byteSize());
            }
        });
    }

    /**
     * Writes a checkpoint with random weights, streaming so that files of any size (e.g. shaped like stories110M)
     * take little memory: matrices and embeddings uniform in ±1/√dim, norm weights 1. The same seed gives the same
     * file.
     *
     * @param file the file to create or replace
     * @param config a Llama configuration
     * @param seed the seed
     * @throws IllegalArgumentException if the configuration is not Llama's
     * @throws IOException if the file cannot be written
     */
    public static void writeRandom(Path file, ModelConfig config, long seed) throws IOException {
        requireLlama(config);
        float scale = (float) (1 / Math.sqrt(config.dim()));
        SplittableRandom[] random = new SplittableRandom[1];
        write(file, config, (part, layer, first, target) -> {
            if (part == Part.FREQ_CIS_REAL || part == Part.FREQ_CIS_IMAG) {
                fillRopeTable(config, part, first, target);
                return;
            }
            if (first == 0) { // a stream per tensor, so that values do not depend on the chunking
                random[0] = new SplittableRandom(seed * 31 + part.ordinal() * 1_000_003L + layer);
            }
            for (long i = 0; i < target.byteSize() / Float.BYTES; i++) {
                float value = part.isNorm() ? 1 : (float) (scale * (2 * random[0].nextDouble() - 1));
                target.setAtIndex(FLOAT, i, value);
            }
        });
    }

    private static void requireLlama(ModelConfig config) {
        if (config.architecture() != Architecture.LLAMA) {
            throw new IllegalArgumentException("llama2.c checkpoints hold Llama models, not " + config.architecture());
        }
    }

    /** Returns a part's tensor for a layer, or null for the RoPE tables, which the weights do not hold. */
    private static MemorySegment tensor(LlamaWeights<MemorySegment> w, Part part, int layer) {
        LlamaWeights.Layer<MemorySegment> l = part.perLayer() ? w.layers().get(layer) : null;
        return switch (part) {
            case TOKEN_EMBEDDING -> w.tokenEmbedding();
            case ATTENTION_NORM -> l.attentionNorm();
            case WQ -> l.wq();
            case WK -> l.wk();
            case WV -> l.wv();
            case WO -> l.wo();
            case FFN_NORM -> l.ffnNorm();
            case W1 -> l.w1();
            case W2 -> l.w2();
            case W3 -> l.w3();
            case FINAL_NORM -> w.finalNorm();
            case FREQ_CIS_REAL, FREQ_CIS_IMAG -> null;
            case CLASSIFIER -> w.classifier();
        };
    }

    /** The cos (real) or sin (imaginary) of position × frequency, as llama2.c's legacy export stored them. */
    private static void fillRopeTable(ModelConfig config, Part part, long first, MemorySegment target) {
        int half = config.headSize() / 2;
        for (long i = 0; i < target.byteSize() / Float.BYTES; i++) {
            long index = first + i;
            double frequency = Math.pow(config.ropeTheta(), -(double) (index % half) / half);
            double angle = (index / half) * frequency;
            target.setAtIndex(FLOAT, i, (float) (part == Part.FREQ_CIS_REAL ? Math.cos(angle) : Math.sin(angle)));
        }
    }

    private static void write(Path file, ModelConfig config, Content content) throws IOException {
        AtomicFiles.replace(file, temporary -> {
            try (FileChannel channel = Channels.create(temporary)) {
                ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
                header.putInt(config.dim())
                        .putInt(config.hiddenDim())
                        .putInt(config.layers())
                        .putInt(config.heads());
                header.putInt(config.kvHeads())
                        .putInt(config.sharedClassifier() ? config.vocabSize() : -config.vocabSize())
                        .putInt(config.seqLen());
                Channels.writeFully(channel, header.flip());
                ByteBuffer chunk = ByteBuffer.allocateDirect(CHUNK_FLOATS * Float.BYTES);
                MemorySegment chunkSegment = MemorySegment.ofBuffer(chunk);
                for (Part part : Part.values()) {
                    long elements = part.elements(config);
                    for (int layer = 0; layer < part.count(config); layer++) {
                        for (long first = 0; first < elements; first += CHUNK_FLOATS) {
                            int n = (int) Math.min(CHUNK_FLOATS, elements - first);
                            content.fill(part, layer, first, chunkSegment.asSlice(0, (long) n * Float.BYTES));
                            Channels.writeFully(channel, chunk.clear().limit(n * Float.BYTES));
                        }
                    }
                }
            }
        });
    }
}
