package dev.panamax.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.kernels.WeightFormat;
import dev.panamax.kernels.testing.ReferenceBlas;
import java.lang.annotation.Annotation;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Pattern;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.openblas.global.openblas;
import org.ejml.data.FMatrixRMaj;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Runs every {@code @Benchmark} method of the suites that put Panamax next to a peer once and checks its result against
 * a float64 reference computed here from the benchmark's own inputs, so that no implementation can win a comparison
 * by computing something else (a wrong layout, scale or mask, or inputs other than its peers').
 *
 * <p>The state is set up as JMH sets it up ({@code @Param} fields, then the {@code @Setup} methods), once for all
 * benchmarks of a parameter combination, and each output is filled with NaN once read, so that a benchmark that
 * writes nothing cannot pass on an earlier one's result. Parameters: the smallest
 * value of each {@code @Param} list of sizes (numbers and shapes such as {@code 64x64x64}, by the product of their
 * numbers) and every value of the others (layouts, formats, ops), which select different code. {@code
 * -Dbench.p='NAME=V1,V2 NAME=V'} replaces a list as JMH's {@code -p} does; select the suite with {@code
 * -Dtest=BenchCorrectnessTest#gemm}, and {@code -Dbench.verbose=true} prints each result's worst error.
 *
 * <p>Tolerances are the error bounds of float arithmetic, element by element: a float sum of n terms, in any order and
 * with or without fused multiply-adds, is within {@code γ(n)·Σ|term|} of the exact sum, {@code γ(n) = n·u/(1 − n·u)},
 * u = 2⁻²⁴ (Higham, Accuracy and Stability of Numerical Algorithms, §3.1). So the tolerance grows with the reduction
 * length n, as the error of a correct float32 kernel does, and with the magnitude of the terms rather than of their
 * sum, which cancellation can make small. Each check says which n and which terms it uses, and adds a few u for the
 * roundings around the sum (exponentials within 2 ulp, a division, a scaling). A wrong result is off by about the size
 * of the result, orders of magnitude past these bounds.
 */
class BenchCorrectnessTest {
    /** A parameter value that is a size: a number, or numbers joined by {@code x} and {@code *} (shapes). */
    private static final Pattern SIZE = Pattern.compile("\\d+([x*]\\d+)*");

    /** The suites with no peer computing in this JVM, and why; every other suite of {@link Bench} has a check here. */
    private static final Map<Class<?>, String> UNCHECKED = Map.of(
            DowncallBench.class, "it times calls into libcublas that return a version number; nothing is computed",
            EmulatorBench.class, "it times the emulator alone; cuda-bindings' tests check sgemm_tiled's result",
            GenerateBench.class, "its peers run outside the JVM; decode-peers.sh compares their greedy texts",
            TrainBench.class, "its peers, llm.c and PyTorch, run outside the JVM (bench/peers)");

    private static final Set<Class<?>> CHECKED = Set.of(
            GemmBench.class,
            GemvBench.class,
            OpsBench.class,
            AttentionBench.class,
            AttentionDecodeBench.class,
            QuantBench.class);

    /** Why OpenBLAS's bundled library did not load here, or null if it did. */
    private static final String OPENBLAS_MISSING = openblasMissing();

    private static String openblasMissing() {
        try {
            Loader.load(openblas.class);
            return null;
        } catch (Throwable e) {
            // An UnsatisfiedLinkError, or a NoClassDefFoundError on a platform the pom bundles no natives for.
            return "OpenBLAS did not load (org.bytedeco:openblas bundles it for linux-x86_64 only): " + e;
        }
    }

    @Test
    void everySuiteIsCheckedOrSaysWhyNot() {
        Set<Class<?>> listed = new HashSet<>(CHECKED);
        listed.addAll(UNCHECKED.keySet());
        assertEquals(Set.copyOf(Bench.SUITES.values()), listed, "a suite with no check here and no reason why not");
        assertTrue(CHECKED.stream().noneMatch(UNCHECKED::containsKey));
    }

    @Test
    void sizeParametersTakeTheSmallestOtherParametersEveryValue() throws Exception {
        List<Map<String, String>> gemv = combinations(GemvBench.class, Map.of());
        assertEquals(
                List.of(
                        Map.of("shape", "768x768", "layout", "N", "threads", "1"),
                        Map.of("shape", "768x768", "layout", "T", "threads", "1")),
                gemv);
        assertEquals(
                List.of(Map.of("shape", "64x64x64", "threads", "2")),
                combinations(GemmBench.class, Map.of("threads", List.of("2"))));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The suites.

    @Test
    void gemm() throws Exception {
        assumeTrue(OPENBLAS_MISSING == null, OPENBLAS_MISSING);
        check(GemmBench.class, overrides(), BenchCorrectnessTest::gemmReference, BenchCorrectnessTest::gemmResult);
    }

    /** The batched shape, where OpenBLAS's and EJML's loops over the batch and the strides between products count. */
    @Test
    void gemmBatched() throws Exception {
        assumeTrue(OPENBLAS_MISSING == null, OPENBLAS_MISSING);
        String batched = Arrays.stream(GemmBench.class
                        .getField("shape")
                        .getAnnotation(Param.class)
                        .value())
                .filter(shape -> shape.contains("*"))
                .findFirst()
                .orElseThrow();
        Map<String, List<String>> overrides = new HashMap<>(overrides());
        overrides.putIfAbsent("shape", List.of(batched));
        check(GemmBench.class, overrides, BenchCorrectnessTest::gemmReference, BenchCorrectnessTest::gemmResult);
    }

    /** {@code C = A·B}, each element a sum of k products: {@code γ(k + 2)·Σ|a·b|} (one more for α, one for β·C). */
    private static Expected gemmReference(GemmBench bench) {
        int[] s = GemmBench.parse(bench.shape);
        int batch = s[0], m = s[1], k = s[2], n = s[3];
        // Every product of a batch multiplies its rows of A by the same B: one product of batch·m rows.
        ReferenceBlas.Result c = ReferenceBlas.gemm(
                false, false, batch * m, n, k, 1, bench.inputA(), 0, k, bench.inputB(), 0, n, 0, new float[0], 0, n);
        return expected(c, k);
    }

    /** A reference product as the checks take it, each element within {@code γ(terms + 2)·Σ|a·b|}. */
    private static Expected expected(ReferenceBlas.Result c, int terms) {
        Expected expected = new Expected(c.values().length);
        for (int i = 0; i < c.values().length; i++) {
            expected.set(i, c.values()[i], Expected.gamma(terms + 2) * c.magnitudes()[i]);
        }
        return expected;
    }

    /** Every GemmBench method returns C, whatever holds it. */
    private static List<Checked> gemmResult(GemmBench bench, String method, Object returned, Expected expected) {
        return List.of(new Checked(take(returned, expected.length()), expected));
    }

    @Test
    void gemv() throws Exception {
        assumeTrue(OPENBLAS_MISSING == null, OPENBLAS_MISSING);
        check(GemvBench.class, overrides(), bench -> null, (bench, method, returned, unused) -> switch (method) {
            case "plainRead" -> List.of(); // a read of A's bytes, nothing computed: that it ran is the check
            default -> {
                // The reference reads the copy of A the benchmark read: every copy holds the same values.
                Expected y = gemvReference(bench);
                yield List.of(new Checked(take(returned, y.length()), y));
            }
        });
    }

    /** {@code y = A·x} or {@code Aᵀ·x}, a sum of n products (n the side summed over): {@code γ(n + 2)·Σ|a·x|}. */
    private static Expected gemvReference(GemvBench bench) {
        String[] dims = bench.shape.split("x");
        int rows = Integer.parseInt(dims[0]);
        int cols = Integer.parseInt(dims[1]);
        boolean transposed = bench.layout.equals("T");
        float[] a = bench.lastMatrix().toArray(ValueLayout.JAVA_FLOAT);
        float[] x = bench.vector().toArray(ValueLayout.JAVA_FLOAT);
        int outputs = transposed ? cols : rows;
        int length = transposed ? rows : cols;
        // y as a one-column product: op(A) is outputs × length, x length × 1.
        return expected(
                ReferenceBlas.gemm(
                        transposed, false, outputs, 1, length, 1, a, 0, cols, x, 0, 1, 0, new float[0], 0, 1),
                length);
    }

    @Test
    void quant() throws Exception {
        check(QuantBench.class, overrides(), bench -> null, (bench, method, returned, unused) -> switch (method) {
            case "plainRead" -> List.of(); // a read of W's bytes, nothing computed: that it ran is the check
            default -> {
                Expected y = quantReference(
                        bench, bench.lastWeights().data(), bench.lastWeights().byteOffset());
                yield List.of(new Checked(take(returned, y.length()), y));
            }
        });
    }

    /**
     * {@code y = W·x}, W the bytes the benchmark read, decoded here in the format and shape its parameters name, as
     * {@link WeightFormat} defines them: a sum of {@code columns} products, {@code γ(columns + 2)·Σ|w·x|}, the bound
     * QuantizedProduct documents.
     */
    private static Expected quantReference(QuantBench bench, MemorySegment data, long offset) {
        int[] shape = QuantBench.parse(bench.shape);
        int rows = shape[0];
        int columns = shape[1];
        WeightFormat format = WeightFormat.valueOf(bench.format);
        float[] x = bench.activations();
        ValueLayout.OfShort half = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        Expected expected = new Expected(rows);
        double[] row = new double[columns];
        for (int r = 0; r < rows; r++) {
            long at = offset + r * format.rowBytes(columns);
            for (int c = 0; c < columns; c++) {
                row[c] = switch (format) {
                    case F32 ->
                        data.get(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), at + 4L * c);
                    case F16 -> Float.float16ToFloat(data.get(half, at + 2L * c));
                    case BF16 -> Float.intBitsToFloat(data.get(half, at + 2L * c) << 16);
                    case Q8_0 -> {
                        long block = at + c / 32 * 34L;
                        yield Float.float16ToFloat(data.get(half, block))
                                * data.get(ValueLayout.JAVA_BYTE, block + 2 + c % 32);
                    }
                    case Q4_0 -> {
                        long block = at + c / 32 * 18L;
                        int packed = data.get(ValueLayout.JAVA_BYTE, block + 2 + c % 16) & 0xff;
                        int nibble = c % 32 < 16 ? packed & 0xf : packed >>> 4;
                        yield Float.float16ToFloat(data.get(half, block)) * (nibble - 8);
                    }
                };
            }
            double sum = 0, magnitude = 0;
            for (int c = 0; c < columns; c++) {
                sum += row[c] * x[c];
                magnitude += Math.abs(row[c] * x[c]);
            }
            expected.set(r, sum, Expected.gamma(columns + 2) * magnitude);
        }
        return expected;
    }

    @Test
    void attention() throws Exception {
        assumeTrue(OPENBLAS_MISSING == null, OPENBLAS_MISSING);
        // A state per benchmark: backward reads the O that setUp saved, which the forward benchmarks overwrite.
        check(
                AttentionBench.class,
                overrides(),
                true,
                bench ->
                        new AttentionReference(bench.tensors(), AttentionBench.HEADS, bench.t, AttentionBench.HEAD_DIM),
                (bench, method, returned, reference) -> switch (method) {
                    case "panamax", "unfused", "unfusedOpenblas" ->
                        List.of(new Checked(take(returned, reference.o.length()), reference.o));
                    case "backward" -> {
                        AttentionBench.Tensors tensors = bench.tensors();
                        assertTrue(returned == tensors.dQ(), "backward returns dQ");
                        yield List.of(
                                new Checked(tensors.dQ(), reference.dQ),
                                new Checked(tensors.dK(), reference.dK),
                                new Checked(tensors.dV(), reference.dV));
                    }
                    default -> throw new AssertionError("no check for AttentionBench." + method);
                });
    }

    @Test
    void decode() throws Exception {
        check(AttentionDecodeBench.class, overrides(), bench -> null, (bench, method, returned, unused) -> {
            int heads = AttentionDecodeBench.HEADS;
            int dim = AttentionDecodeBench.HEAD_DIM;
            // The layouts as AttentionDecodeBench documents them, [head, position, 64] and [position, head, 64].
            boolean rows = bench.layout.equals("rows");
            int headStride = rows ? dim : AttentionDecodeBench.CAPACITY * dim;
            int rowStride = rows ? heads * dim : dim;
            int window = bench.lastWindow();
            float[] k = new float[heads * bench.tk * dim];
            float[] v = new float[k.length];
            for (int h = 0; h < heads; h++) {
                for (int j = 0; j < bench.tk; j++) {
                    int from = window + h * headStride + j * rowStride;
                    System.arraycopy(bench.keys(), from, k, (h * bench.tk + j) * dim, dim);
                    System.arraycopy(bench.values(), from, v, (h * bench.tk + j) * dim, dim);
                }
            }
            Expected o = AttentionReference.forward(bench.query(), k, v, heads, 1, bench.tk, dim);
            return List.of(new Checked(take(returned, o.length()), o));
        });
    }

    @Test
    void ops() throws Exception {
        check(OpsBench.class, overrides(), OpsReference::new, (bench, method, returned, reference) -> switch (method) {
            case "arrayCopy" -> List.of(); // the same bytes moved, nothing computed: that it ran is the check
            case "panamax", "plainJava" -> reference.check(OpsReference.takeOutput(bench), returned);
            case "panamaxNative" -> reference.check(OpsReference.takeNativeOutput(bench), returned);
            default -> throw new AssertionError("no check for OpsBench." + method);
        });
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Running a suite.

    /**
     * A benchmark's result beside what it should be.
     *
     * @param actual the result, as floats
     * @param expected the reference
     */
    record Checked(float[] actual, Expected expected) {}

    /** The checks of one benchmark's result, given the reference of its parameters; a method none knows of fails. */
    @FunctionalInterface
    private interface Checks<T, R> {
        List<Checked> of(T bench, String method, Object returned, R reference) throws Exception;
    }

    private static <T, R> void check(
            Class<T> suite, Map<String, List<String>> overrides, Function<T, R> reference, Checks<T, R> checks)
            throws Exception {
        check(suite, overrides, false, reference, checks);
    }

    /**
     * Runs each benchmark of {@code suite} once per parameter combination and checks what it computed; the reference
     * is computed once per combination, from the first state's inputs. The benchmarks of a combination share one state
     * (the rotating suites set up hundreds of MiB), in which each check fills the output it read with NaN ({@link
     * #take}), or with {@code statePerBenchmark} each gets a state of its own.
     */
    private static <T, R> void check(
            Class<T> suite,
            Map<String, List<String>> overrides,
            boolean statePerBenchmark,
            Function<T, R> reference,
            Checks<T, R> checks)
            throws Exception {
        List<Method> benchmarks = annotated(suite, Benchmark.class);
        assertFalse(benchmarks.isEmpty(), suite + " has no @Benchmark method");
        List<String> failures = new ArrayList<>();
        for (Map<String, String> params : combinations(suite, overrides)) {
            R expected = null;
            T bench = null;
            try {
                for (Method benchmark : benchmarks) {
                    if (bench == null) {
                        bench = setUp(suite, params);
                    }
                    if (expected == null) {
                        expected = reference.apply(bench);
                    }
                    Object returned = invoke(benchmark, bench);
                    for (Checked checked : checks.of(bench, benchmark.getName(), returned, expected)) {
                        String what = suite.getSimpleName() + "." + benchmark.getName() + " " + params + ": ";
                        String mismatch = checked.expected().mismatch(checked.actual());
                        if (mismatch != null) {
                            failures.add(what + mismatch);
                        }
                        if (Boolean.getBoolean("bench.verbose")) {
                            System.out.printf(
                                    "%sworst error %.3g of the tolerance%n",
                                    what, checked.expected().worstRatio(checked.actual()));
                        }
                    }
                    if (statePerBenchmark) {
                        tearDown(bench);
                        bench = null;
                    }
                }
            } finally {
                if (bench != null) {
                    tearDown(bench);
                }
            }
        }
        if (!failures.isEmpty()) {
            fail(failures.size() + " benchmark results differ from the reference:\n" + String.join("\n", failures));
        }
    }

    private static <T> T setUp(Class<T> suite, Map<String, String> params) throws Exception {
        T bench = suite.getDeclaredConstructor().newInstance();
        for (Map.Entry<String, String> param : params.entrySet()) {
            Field field = suite.getField(param.getKey());
            String value = param.getValue();
            if (field.getType() == int.class) {
                field.setInt(bench, Integer.parseInt(value));
            } else if (field.getType() == String.class) {
                field.set(bench, value);
            } else {
                throw new AssertionError("@Param " + field + " of a type this test does not set");
            }
        }
        // Trial, then Iteration, then Invocation: the order JMH runs them in before the first operation.
        List<Method> setUps = new ArrayList<>(annotated(suite, Setup.class));
        setUps.sort(Comparator.comparing(m -> m.getAnnotation(Setup.class).value()));
        for (Method setUp : setUps) {
            invoke(setUp, bench);
        }
        return bench;
    }

    private static void tearDown(Object bench) throws Exception {
        for (Method tearDown : annotated(bench.getClass(), TearDown.class)) {
            invoke(tearDown, bench);
        }
    }

    private static Object invoke(Method method, Object target) throws Exception {
        try {
            return method.invoke(target);
        } catch (InvocationTargetException e) {
            if (e.getCause() instanceof Exception cause) {
                throw cause;
            }
            throw e;
        }
    }

    /** The public methods of {@code suite} (its own and inherited) carrying {@code annotation}, by name. */
    private static List<Method> annotated(Class<?> suite, Class<? extends Annotation> annotation) {
        return Arrays.stream(suite.getMethods())
                .filter(m -> m.isAnnotationPresent(annotation))
                .sorted(Comparator.comparing(Method::getName))
                .toList();
    }

    /**
     * Every combination of the suite's {@code @Param} values to check: the smallest of a list of sizes, every value
     * of another list, or the values {@code overrides} gives for that name.
     */
    static List<Map<String, String>> combinations(Class<?> suite, Map<String, List<String>> overrides) {
        List<Map<String, String>> combinations = new ArrayList<>(List.of(Map.of()));
        for (Field field : suite.getFields()) {
            Param param = field.getAnnotation(Param.class);
            if (param == null) {
                continue;
            }
            List<String> values = overrides.getOrDefault(field.getName(), chosen(param.value()));
            List<Map<String, String>> next = new ArrayList<>();
            for (Map<String, String> combination : combinations) {
                for (String value : values) {
                    Map<String, String> extended = new LinkedHashMap<>(combination);
                    extended.put(field.getName(), value);
                    next.add(extended);
                }
            }
            combinations = next;
        }
        return combinations;
    }

    private static List<String> chosen(String[] values) {
        if (!Arrays.stream(values).allMatch(value -> SIZE.matcher(value).matches())) {
            return List.of(values);
        }
        Comparator<String> bySize = Comparator.comparingDouble(value -> Arrays.stream(value.split("[x*]"))
                .mapToDouble(Double::parseDouble)
                .reduce(1, (a, b) -> a * b));
        return List.of(Arrays.stream(values).min(bySize).orElseThrow());
    }

    /** {@code -Dbench.p='NAME=V1,V2 NAME=V'}, as JMH's {@code -p NAME=V1,V2}: the values to check instead. */
    private static Map<String, List<String>> overrides() {
        Map<String, List<String>> overrides = new HashMap<>();
        String given = System.getProperty("bench.p", "").strip();
        for (String entry : given.isEmpty() ? new String[0] : given.split("[\\s;]+")) {
            int equals = entry.indexOf('=');
            if (equals < 1) {
                throw new IllegalArgumentException("bench.p: '" + entry + "' is not NAME=V1,V2");
            }
            overrides.put(
                    entry.substring(0, equals),
                    List.of(entry.substring(equals + 1).split(",")));
        }
        return overrides;
    }

    /**
     * The first {@code length} floats of a benchmark's result, whatever holds them; the buffer is then filled with
     * NaN, so that a later benchmark on the same state that leaves it as it was fails rather than passes.
     */
    private static float[] take(Object returned, int length) {
        switch (returned) {
            case float[] array -> {
                assertTrue(array.length >= length, "the result has " + array.length + " floats, not " + length);
                float[] values = Arrays.copyOf(array, length);
                Arrays.fill(array, Float.NaN);
                return values;
            }
            case MemorySegment segment -> {
                float[] values = segment.asSlice(0, (long) Float.BYTES * length).toArray(ValueLayout.JAVA_FLOAT);
                segment.fill((byte) 0xff); // all ones: a NaN in every float
                return values;
            }
            case FloatPointer pointer -> {
                assertTrue(pointer.capacity() >= length, "the result has " + pointer.capacity() + " floats");
                float[] values = new float[length];
                FloatPointer whole = new FloatPointer(pointer).position(0);
                whole.get(values);
                float[] poison = new float[(int) pointer.capacity()];
                Arrays.fill(poison, Float.NaN);
                whole.put(poison);
                return values;
            }
            case FMatrixRMaj[] matrices -> {
                float[] values = new float[length];
                int at = 0;
                for (FMatrixRMaj matrix : matrices) {
                    System.arraycopy(matrix.data, 0, values, at, matrix.getNumElements());
                    at += matrix.getNumElements();
                    Arrays.fill(matrix.data, Float.NaN);
                }
                assertEquals(length, at);
                return values;
            }
            default -> throw new AssertionError("a result of " + returned.getClass() + " this test cannot read");
        }
    }
}
