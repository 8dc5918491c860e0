package dev.panamax.bench;

import dev.panamax.kernels.Parallelism;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.generate.Generator;
import dev.panamax.model.generate.Sampler;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Where a decode step's time goes: every backend operation of greedy decoding timed and summed over the tokens, per
 * operation and, for the products, per weight shape, so that runs at 1 and at 2 threads show which operations the
 * second thread speeds up and which it does not. The model is {@link GenerateBench}'s: a llama2.c checkpoint with
 * random weights of the stories15M or stories110M shape, written to a temporary file, and with {@code --weights
 * f32|q8_0|q4_0} that checkpoint written again as a GGUF of that type and decoded from it.
 *
 * <p>Usage: {@code DecodeProfile [--shape 15M|110M] [--weights llama2c|f32|q8_0|q4_0] [--threads N] [--tokens N]
 * [--warmup N]}; it prints one line per
 * operation (calls and microseconds per token, share of the token), then the time outside the backend (sampling,
 * the generator) and the total per token. Each operation is timed around its call, so the profile adds a few
 * microseconds per token; the totals are for comparing runs, the JMH suite {@code generate} for rates.
 */
public final class DecodeProfile {
    private DecodeProfile() {}

    /**
     * Runs the profile.
     *
     * @param args the options above
     * @throws IOException if the temporary checkpoint cannot be written or read
     */
    public static void main(String[] args) throws IOException {
        String shape = "110M";
        String weights = "llama2c";
        int threads = Parallelism.threads();
        int tokens = 128;
        int warmup = 3;
        for (int i = 0; i < args.length; i++) {
            String value = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--shape" -> shape = value;
                case "--weights" -> weights = value;
                case "--threads" -> threads = Integer.parseInt(value);
                case "--tokens" -> tokens = Integer.parseInt(value);
                case "--warmup" -> warmup = Integer.parseInt(value);
                default ->
                    throw new IllegalArgumentException("unknown argument (" + args[i]
                            + "); usage: DecodeProfile [--shape 15M|110M] [--weights llama2c|f32|q8_0|q4_0] [--threads N]"
                            + " [--tokens N] [--warmup N]");
            }
            i++;
        }
        ModelConfig config = GenerateBench.config(shape);
        Parallelism.setThreads(threads);
        Path file = Files.createTempFile("panamax-profile-", ".bin");
        // Named after the checkpoint's unique file, so that it exists only when a GGUF is written.
        Path gguf = file.resolveSibling(file.getFileName() + ".gguf");
        try {
            Llama2cCheckpoint.writeRandom(file, config, 1);
            try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file);
                    CpuBackend cpu = new CpuBackend();
                    GgufLlama quantized = weights.equals("llama2c")
                            ? null
                            : GenerateBench.quantizedCopy(gguf, shape, config, checkpoint, weights)) {
                Map<String, long[]> times = new TreeMap<>();
                Backend timed = timed(cpu, times);
                Transformer model = quantized == null
                        ? Transformer.llama(timed, config, checkpoint.weights(), 1, tokens + 1)
                        : Transformer.llama(timed, quantized, 1, tokens + 1);
                Generator generator = new Generator(model, Sampler.greedy(), Set.of());
                for (int run = 0; run < warmup; run++) {
                    generator.generate(new int[] {1}, tokens, token -> {});
                }
                times.clear();
                Generator.Result result = generator.generate(new int[] {1}, tokens, token -> {});
                print(shape + " " + weights, threads, result, times);
            }
        } finally {
            Files.deleteIfExists(file);
            Files.deleteIfExists(gguf);
        }
    }

    /** The backend with every call timed into {@code times}: name → {calls, nanoseconds}. */
    private static Backend timed(Backend backend, Map<String, long[]> times) {
        return (Backend) Proxy.newProxyInstance(
                Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, (proxy, method, arguments) -> {
                    String name = method.getName();
                    if (name.equals("matmul") && arguments[1] instanceof Tensor w) {
                        name = "matmul " + w.rows() + "×" + w.cols();
                    }
                    long start = System.nanoTime();
                    try {
                        return method.invoke(backend, arguments);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    } finally {
                        long[] entry = times.computeIfAbsent(name, k -> new long[2]);
                        entry[0]++;
                        entry[1] += System.nanoTime() - start;
                    }
                });
    }

    private static void print(String shape, int threads, Generator.Result result, Map<String, long[]> times) {
        // Every generated token but the first comes from a decode step; the prompt's one pass is counted in too.
        int passes = result.decodeSteps() + 1;
        long total = result.prefillNanos() + result.decodeNanos();
        long inBackend = 0;
        System.out.printf("decode profile: %s shape, %d threads, %d forward passes%n", shape, threads, passes);
        System.out.printf("%-22s %10s %14s %7s%n", "operation", "calls/tok", "us/token", "share");
        for (Map.Entry<String, long[]> e : times.entrySet()) {
            long[] entry = e.getValue();
            inBackend += entry[1];
            System.out.printf(
                    "%-22s %10.1f %14.1f %6.1f%%%n",
                    e.getKey(), (double) entry[0] / passes, entry[1] / 1e3 / passes, 100.0 * entry[1] / total);
        }
        System.out.printf(
                "%-22s %10s %14.1f %6.1f%%%n",
                "outside the backend", "", (total - inBackend) / 1e3 / passes, 100.0 * (total - inBackend) / total);
        System.out.printf("%-22s %10s %14.1f%n", "total", "", total / 1e3 / passes);
    }
}
