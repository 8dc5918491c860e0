package dev.panamax.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.Inputs;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The shared pool under concurrent callers while the thread count changes. */
class ParallelismTest {
    private static final int DEFAULT_THREADS = Parallelism.threads();
    /** Kernel calls running at once. */
    private static final int CALLERS = 8;
    /** The largest thread count the changer sets: within the attention call's 64 tasks, so each count is used. */
    private static final int MAX_THREADS = 33;
    /** How long the changer keeps changing the count. */
    private static final long STRESS_NANOS = TimeUnit.MILLISECONDS.toNanos(2500);

    @AfterEach
    void restoreThreads() {
        Parallelism.setThreads(DEFAULT_THREADS);
    }

    /** One kernel call on fixed inputs, writing a fresh output. */
    private interface Kernel {
        float[] run();
    }

    private static Kernel attention() {
        // 4 × 16 heads of one query tile each: 64 tasks, above the parallel threshold.
        Attention.Shape shape = new Attention.Shape(4, 16, 4, 64, 64, 32);
        float[] q = Inputs.gaussian(Inputs.seed("stress q"), 4 * 16 * 64 * 32, 1);
        float[] k = Inputs.gaussian(Inputs.seed("stress k"), 4 * 4 * 64 * 32, 1);
        float[] v = Inputs.gaussian(Inputs.seed("stress v"), 4 * 4 * 64 * 32, 1);
        return () -> {
            float[] o = new float[q.length];
            Attention.forward(
                    shape,
                    true,
                    TensorView.dense(q, 16, 64, 32),
                    TensorView.dense(k, 4, 64, 32),
                    TensorView.dense(v, 4, 64, 32),
                    TensorView.dense(o, 16, 64, 32));
            return o;
        };
    }

    private static Kernel gemm() {
        // 256 × 256 × 64: 4M multiply-adds, cut into up to two cells per thread.
        int m = 256, n = 256, k = 64;
        float[] a = Inputs.uniform(Inputs.seed("stress a"), m * k, -1, 1);
        float[] b = Inputs.uniform(Inputs.seed("stress b"), k * n, -1, 1);
        return () -> {
            float[] c = new float[m * n];
            Gemm.sgemm(Transpose.NO_TRANSPOSE, Transpose.NO_TRANSPOSE, m, n, k, 1f, a, 0, k, b, 0, n, 0f, c, 0, n);
            return c;
        };
    }

    /**
     * Row kernels on native memory, whose rows are staged through each thread's lines: LayerNorm (writing its means
     * and rstds), a causal softmax of its output, and RMSNorm of that, in place.
     */
    private static Kernel rowsOnNativeMemory() {
        int rows = 96, cols = 300;
        Arena arena = Arena.ofAuto();
        MemorySegment x =
                arena.allocateFrom(ValueLayout.JAVA_FLOAT, Inputs.gaussian(Inputs.seed("stress x"), rows * cols, 3));
        MemorySegment weight =
                arena.allocateFrom(ValueLayout.JAVA_FLOAT, Inputs.uniform(Inputs.seed("stress w"), cols, -1, 1));
        MemorySegment bias =
                arena.allocateFrom(ValueLayout.JAVA_FLOAT, Inputs.uniform(Inputs.seed("stress b"), cols, -1, 1));
        return () -> {
            MemorySegment y = arena.allocate(ValueLayout.JAVA_FLOAT, (long) rows * cols + 2 * rows);
            LayerNorm.forward(
                    rows,
                    cols,
                    1e-5f,
                    x,
                    0,
                    cols,
                    weight,
                    0,
                    bias,
                    0,
                    y,
                    0,
                    cols,
                    y,
                    (long) rows * cols,
                    y,
                    (long) rows * cols + rows);
            Softmax.forward(rows, cols, 1f, cols - rows, y, 0, cols, y, 0, cols);
            RmsNorm.forward(rows, cols, 1e-5f, y, 0, cols, weight, 0, y, 0, cols, null, 0);
            return y.toArray(ValueLayout.JAVA_FLOAT);
        };
    }

    @Test
    void kernelsStayCorrectWhileTheThreadCountChanges() throws InterruptedException {
        Kernel[] kernels = {attention(), gemm(), rowsOnNativeMemory()};
        Parallelism.setThreads(1);
        float[][] expected = new float[kernels.length][];
        for (int i = 0; i < kernels.length; i++) {
            expected[i] = kernels[i].run();
        }

        ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
        AtomicBoolean stop = new AtomicBoolean();
        CountDownLatch start = new CountDownLatch(1);
        List<Thread> callers = new ArrayList<>();
        for (int t = 0; t < CALLERS; t++) {
            int first = t;
            Thread caller = Thread.ofPlatform().name("stress-caller-" + t).start(() -> {
                try {
                    start.await();
                    // Every caller runs each kernel at least once, however slowly the machine lets it start.
                    for (int call = 0; call < kernels.length || !stop.get(); call++) {
                        int which = (first + call) % kernels.length;
                        float[] actual = kernels[which].run();
                        if (!Arrays.equals(expected[which], actual)) {
                            throw new AssertionError("kernel " + which + " differs from its single-threaded result");
                        }
                    }
                } catch (Throwable e) {
                    failures.add(e);
                }
            });
            callers.add(caller);
        }

        start.countDown();
        // Climb through ever larger counts, falling back after each, so the pool grows and shrinks while every caller
        // keeps submitting to it; the old pool was replaced (and shut down) at each new largest count.
        long deadline = System.nanoTime() + STRESS_NANOS;
        while (System.nanoTime() < deadline) {
            for (int count = 2; count <= MAX_THREADS && System.nanoTime() < deadline; count++) {
                Parallelism.setThreads(count);
                Thread.sleep(1);
                Parallelism.setThreads(1 + count / 3);
                Thread.sleep(1);
            }
        }
        stop.set(true);
        for (Thread caller : callers) {
            caller.join(TimeUnit.SECONDS.toMillis(60));
            assertFalse(caller.isAlive(), caller.getName() + " did not finish: a parallel region never completed");
        }

        if (!failures.isEmpty()) {
            AssertionError error = new AssertionError(failures.size() + " of " + CALLERS + " callers failed");
            failures.forEach(error::addSuppressed);
            throw error;
        }
    }

    /**
     * The row kernels and attention over inputs holding NaN and ±∞ in some rows give the same values, NaN where NaN,
     * for every thread count: rows that fall first in a task and rows that do not. (Softmax, which writes {@link
     * Float#NaN} itself, is compared to the bit in SoftmaxTest; the others' NaN takes its sign from the arithmetic,
     * which differs between the first, interpreted calls and compiled code even on one thread.)
     */
    @Test
    void nonFiniteInputsGiveTheSameBitsForEveryThreadCount() {
        int rows = 640, cols = 512;
        float[] x = withNonFiniteRows(Inputs.gaussian(Inputs.seed("non-finite x"), rows * cols, 2), cols, 0);
        float[] dy = withNonFiniteRows(Inputs.gaussian(Inputs.seed("non-finite dy"), rows * cols, 1), cols, 1);
        float[] weight = Inputs.uniform(Inputs.seed("non-finite w"), cols, -1, 1);
        float[] bias = Inputs.uniform(Inputs.seed("non-finite b"), cols, -1, 1);
        int[] targets = new int[rows];
        for (int r = 0; r < rows; r++) {
            targets[r] = r * 37 % cols;
        }
        Agreement.assertThreadIndependent("layer norm", () -> {
            float[] y = new float[rows * cols], mean = new float[rows], rstd = new float[rows];
            float[] dx = new float[rows * cols], dw = new float[cols], db = new float[cols];
            LayerNorm.forward(rows, cols, 1e-5f, x, 0, cols, weight, 0, bias, 0, y, 0, cols, mean, 0, rstd, 0);
            LayerNorm.backward(
                    rows, cols, x, 0, cols, weight, 0, mean, 0, rstd, 0, dy, 0, cols, dx, 0, cols, dw, 0, db, 0);
            return new float[][] {y, mean, rstd, dx, dw, db};
        });
        Agreement.assertThreadIndependent("rms norm", () -> {
            float[] y = new float[rows * cols], rstd = new float[rows];
            float[] dx = new float[rows * cols], dw = new float[cols];
            RmsNorm.forward(rows, cols, 1e-5f, x, 0, cols, weight, 0, y, 0, cols, rstd, 0);
            RmsNorm.backward(rows, cols, x, 0, cols, weight, 0, rstd, 0, dy, 0, cols, dx, 0, cols, dw, 0);
            return new float[][] {y, rstd, dx, dw};
        });
        Agreement.assertThreadIndependent("softmax and cross-entropy", () -> {
            float[] y = new float[rows * cols], logY = new float[rows * cols];
            float[] dx = new float[rows * cols], dlogits = new float[rows * cols];
            Softmax.forward(rows, cols, 1, 100, x, 0, cols, y, 0, cols);
            Softmax.logForward(rows, cols, 1, 100, x, 0, cols, logY, 0, cols);
            Softmax.backward(rows, cols, 1, 100, y, 0, cols, dy, 0, cols, dx, 0, cols);
            float loss = CrossEntropy.forward(rows, cols, x, 0, cols, targets, 0, -100, dlogits, 0, cols);
            return new float[][] {y, logY, dx, dlogits, {loss}};
        });
        // 2 × 4 heads of 96 queries against 96 keys and values of 32 floats: 16 forward tasks, 4 backward ones.
        Attention.Shape shape = new Attention.Shape(2, 4, 2, 96, 96, 32);
        int queries = 2 * 4 * 96 * 32, keys = 2 * 2 * 96 * 32;
        float[] q = withNonFiniteRows(Inputs.gaussian(Inputs.seed("non-finite q"), queries, 1), 32, 0);
        float[] k = withNonFiniteRows(Inputs.gaussian(Inputs.seed("non-finite k"), keys, 1), 32, 1);
        float[] v = withNonFiniteRows(Inputs.gaussian(Inputs.seed("non-finite v"), keys, 1), 32, 2);
        float[] dO = withNonFiniteRows(Inputs.gaussian(Inputs.seed("non-finite dO"), queries, 1), 32, 3);
        Agreement.assertThreadIndependent("attention", () -> {
            float[] o = new float[queries], lse = new float[2 * 4 * 96];
            float[] dq = new float[queries], dk = new float[keys], dv = new float[keys];
            TensorView qv = TensorView.dense(q, 4, 96, 32), kv = TensorView.dense(k, 2, 96, 32);
            TensorView vv = TensorView.dense(v, 2, 96, 32), ov = TensorView.dense(o, 4, 96, 32);
            TensorView lv = TensorView.dense(lse, 4, 96, 1);
            Attention.forward(shape, 0.2f, true, qv, kv, vv, null, ov, lv);
            Attention.backward(
                    shape,
                    0.2f,
                    true,
                    qv,
                    kv,
                    vv,
                    null,
                    ov,
                    lv,
                    TensorView.dense(dO, 4, 96, 32),
                    TensorView.dense(dq, 4, 96, 32),
                    TensorView.dense(dk, 2, 96, 32),
                    TensorView.dense(dv, 2, 96, 32));
            return new float[][] {o, lse, dq, dk, dv};
        });
    }

    /**
     * {@code values} as rows of {@code width}, with a NaN in every seventh row and ±∞ in every eleventh, from row
     * {@code shift}: rows that fall first in a task and rows that do not, for any split.
     */
    private static float[] withNonFiniteRows(float[] values, int width, int shift) {
        for (int r = shift; r < values.length / width; r += 7) {
            values[r * width + r % width] = Float.NaN;
        }
        for (int r = shift + 3; r < values.length / width; r += 11) {
            values[r * width + (r * 5) % width] = r % 2 == 0 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY;
        }
        return values;
    }

    @Test
    void everyTaskOfEveryRegionRunsExactlyOnce() {
        Parallelism.setThreads(3);
        int tasks = 7;
        for (int region = 0; region < 20_000; region++) {
            AtomicIntegerArray runs = new AtomicIntegerArray(tasks);
            Parallelism.forEach(tasks, runs::incrementAndGet);
            for (int task = 0; task < tasks; task++) {
                assertEquals(1, runs.get(task), "region " + region + ", task " + task);
            }
        }
    }

    @Test
    void aFailingTaskReachesTheCallerAndTheTeamRunsTheNextRegion() {
        Parallelism.setThreads(2);
        for (int failing = 0; failing < 64; failing++) {
            int broken = failing;
            IllegalStateException thrown = assertThrows(
                    IllegalStateException.class,
                    () -> Parallelism.forEach(64, task -> {
                        if (task == broken) {
                            throw new IllegalStateException("task " + task);
                        }
                    }));
            assertEquals("task " + failing, thrown.getMessage());
            AtomicIntegerArray runs = new AtomicIntegerArray(64);
            Parallelism.forEach(64, runs::incrementAndGet);
            for (int task = 0; task < 64; task++) {
                assertEquals(1, runs.get(task), "after failure " + failing + ", task " + task);
            }
        }
    }

    @Test
    void aCheckedExceptionThrownByATaskReachesTheCallerWrapped() {
        Parallelism.setThreads(2);
        IOException checked = new IOException("checked");
        IllegalStateException thrown =
                assertThrows(IllegalStateException.class, () -> Parallelism.forEach(64, task -> sneakyThrow(checked)));
        assertSame(checked, thrown.getCause());
        AtomicIntegerArray runs = new AtomicIntegerArray(64);
        Parallelism.forEach(64, runs::incrementAndGet);
        for (int task = 0; task < 64; task++) {
            assertEquals(1, runs.get(task), "task " + task);
        }
    }

    /** Throws {@code e} where the compiler does not let a checked exception through, as some JVM languages do. */
    @SuppressWarnings("unchecked")
    private static <E extends Throwable> void sneakyThrow(Throwable e) throws E {
        throw (E) e;
    }

    @Test
    void aNegativeTaskCountIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Parallelism.forEach(-1, task -> {}));
    }

    @Test
    void aRegionInsideARegionRunsOnTheThreadThatOpenedIt() {
        Parallelism.setThreads(2);
        ConcurrentLinkedQueue<String> mismatches = new ConcurrentLinkedQueue<>();
        Parallelism.forEach(8, outer -> {
            Thread thread = Thread.currentThread();
            Parallelism.forEach(8, inner -> {
                if (Thread.currentThread() != thread) {
                    mismatches.add(outer + "/" + inner);
                }
            });
        });
        assertTrue(mismatches.isEmpty(), "nested tasks ran on another thread: " + mismatches);
    }
}
