package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.cuda.Cuda;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Tolerance;
import java.util.HashSet;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * How the CUDA backend splits a decode's keys over blocks ({@link CudaBackend#keySplit}), from the device's
 * multiprocessors: the choice's bounds, and on the emulated device reporting several multiprocessor counts ({@link
 * Cuda#EMULATED_MULTIPROCESSORS_PROPERTY}), attention within its tolerance of the CPU's for every chunking, 8(keys +
 * headDim)ε of the values' magnitude (as in {@link CudaBackendTest}: each chunking is one order of the same sums), and
 * the same bits for the same count in every schedule.
 */
class CudaAttentionSplitTest {
    private static final int MULTIPROCESSORS_H100 = 132;

    @AfterEach
    void restore() {
        System.clearProperty(Cuda.EMULATED_MULTIPROCESSORS_PROPERTY);
    }

    /** The splits that fill the device: 3 blocks per multiprocessor, in blocks of {@code blocksPerSplit}. */
    private static long filling(long blocksPerSplit, int multiprocessors) {
        return Math.ceilDiv(3L * multiprocessors, blocksPerSplit);
    }

    @Test
    void splitsAreWholeTilesOfAtLeast64KeysAndFillTheDevice() {
        int[] keyCounts = IntStream.concat(
                        IntStream.rangeClosed(1, 3000), IntStream.of(4095, 4096, 4097, 32768, 100_003, 1 << 20))
                .toArray();
        for (long blocks : new long[] {1, 2, 7, 8, 48, 300, 1_000_000}) {
            for (int multiprocessors : new int[] {1, 8, 108, MULTIPROCESSORS_H100, 100_000}) {
                int planned = 0;
                for (int keys : keyCounts) {
                    String what = keys + " keys, " + blocks + " blocks per split, " + multiprocessors + " SMs";
                    CudaBackend.KeySplit split = CudaBackend.keySplit(keys, blocks, multiprocessors);
                    int splits = split.splits();
                    int chunk = split.chunk();
                    int nowPlanned = CudaBackend.plannedSplits(keys, blocks, multiprocessors);
                    assertTrue(nowPlanned >= planned, what + ": the planned splits grow with the keys");
                    planned = nowPlanned;
                    assertTrue(splits >= 1 && splits <= planned && planned <= 1024, what + ": " + split);
                    assertEquals(0, chunk % 32, what + ": whole tiles, " + split);
                    assertTrue(
                            (long) (splits - 1) * chunk < keys && (long) splits * chunk >= keys,
                            what + ": every key in a split, none empty: " + split);
                    if (splits > 1) {
                        assertTrue(chunk >= 64, what + ": at least 64 keys per split, " + split);
                    }
                    long fill = filling(blocks, multiprocessors);
                    if (keys >= 64 * fill && fill <= 1024) {
                        assertTrue(
                                splits * blocks >= 2L * multiprocessors, what + ": at least 2 blocks per SM, " + split);
                    }
                    if (keys <= 64 || fill == 1) {
                        assertEquals(1, splits, what + ": no split for one chunk's keys or a device already full");
                    }
                }
            }
        }
    }

    @Test
    void anH100DecodeOf32HeadsIn8GroupsFillsItsMultiprocessors() {
        // One query of 32 heads sharing 8 key/value heads: blocks of 4 heads, 8 blocks per split; 132 · 3 / 8 → 50.
        assertEquals(new CudaBackend.KeySplit(49, 672), CudaBackend.keySplit(32768, 8, MULTIPROCESSORS_H100));
        assertEquals(new CudaBackend.KeySplit(16, 64), CudaBackend.keySplit(1024, 8, MULTIPROCESSORS_H100));
        assertEquals(new CudaBackend.KeySplit(1, 64), CudaBackend.keySplit(64, 8, MULTIPROCESSORS_H100));
        // Fewer multiprocessors, fewer and longer chunks: 8 SMs · 3 / 8 blocks → 3 splits.
        assertEquals(new CudaBackend.KeySplit(3, 352), CudaBackend.keySplit(1024, 8, 8));
    }

    /**
     * Decoding (1 and 3 queries at the end of 1,000 keys, 8 heads in 2 groups of 4, heads of 40 floats) on emulated
     * devices of 1, 3, 6 and 132 multiprocessors, which split the keys 2, 5, 8 and 16 ways for one query: within the
     * tolerance of the CPU's attention each, and the same bits for the same count in every schedule and run.
     */
    @Test
    void everyMultiprocessorCountsChunkingMatchesTheCpu() {
        int heads = 8;
        int kvHeads = 2;
        int headDim = 40;
        int keys = 1000;
        for (int queries : new int[] {1, 3}) {
            int position = keys - queries;
            float[] q = Inputs.uniform(Inputs.seed("split q" + queries), queries * heads * headDim, -1f, 1f);
            float[] k = Inputs.uniform(Inputs.seed("split k"), keys * kvHeads * headDim, -1f, 1f);
            float[] v = Inputs.uniform(Inputs.seed("split v"), keys * kvHeads * headDim, -1f, 1f);
            Function<Backend, float[]> attention = b -> {
                Tensor out = b.allocate(queries, heads * headDim);
                Tensor lse = b.allocate(queries, heads);
                b.attention(
                        tensor(b, queries, heads * headDim, q),
                        tensor(b, keys, kvHeads * headDim, k),
                        tensor(b, keys, kvHeads * headDim, v),
                        heads,
                        kvHeads,
                        1,
                        position,
                        out,
                        lse);
                float[] both = new float[queries * heads * (headDim + 1)];
                float[] attended = new float[queries * heads * headDim];
                b.read(out, attended);
                float[] logSumExps = new float[queries * heads];
                b.read(lse, logSumExps);
                System.arraycopy(attended, 0, both, 0, attended.length);
                System.arraycopy(logSumExps, 0, both, attended.length, logSumExps.length);
                return both;
            };
            float[] expected;
            try (CpuBackend cpu = new CpuBackend()) {
                expected = attention.apply(cpu);
            }
            double factor = 8 * (keys + headDim) * Tolerance.FLOAT_EPSILON;
            double[] bound = new double[expected.length];
            double[] wide = new double[expected.length];
            int outputs = queries * heads * headDim;
            for (int i = 0; i < bound.length; i++) {
                wide[i] = expected[i];
                // Values are in [-1, 1]; scores are at most headDim / √headDim in magnitude.
                bound[i] = i < outputs ? factor : factor * (1 + Math.abs(expected[i]) + Math.sqrt(headDim));
            }
            Set<CudaBackend.KeySplit> chunkings = new HashSet<>();
            for (int multiprocessors : new int[] {1, 3, 6, MULTIPROCESSORS_H100}) {
                System.setProperty(Cuda.EMULATED_MULTIPROCESSORS_PROPERTY, Integer.toString(multiprocessors));
                CudaBackend.KeySplit split = CudaBackend.keySplit(keys, queries * 2L, multiprocessors);
                chunkings.add(split);
                String what = queries + " queries on " + multiprocessors + " SMs, " + split;
                float[] first = null;
                for (long seed : new long[] {0, 1, 0}) {
                    float[] actual = EmulatedBackends.run(seed, attention::apply);
                    Tolerance.assertClose(what, wide, actual, bound);
                    if (first == null) {
                        first = actual;
                    } else {
                        assertArrayEquals(bits(first), bits(actual), what + ": schedule " + seed + " changed the bits");
                    }
                }
            }
            assertEquals(4, chunkings.size(), "four chunkings for " + queries + " queries: " + chunkings);
        }
    }

    private static Tensor tensor(Backend b, int rows, int cols, float[] values) {
        Tensor t = b.allocate(rows, cols);
        b.write(values, t);
        return t;
    }

    private static int[] bits(float[] values) {
        return IntStream.range(0, values.length)
                .map(i -> Float.floatToIntBits(values[i]))
                .toArray();
    }
}
