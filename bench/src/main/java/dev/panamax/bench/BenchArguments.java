package dev.panamax.bench;

import dev.panamax.model.backend.Backends;
import dev.panamax.model.backend.MatmulPrecision;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
import java.nio.file.Path;

/**
 * The command line of the GPU check's model benchmarks ({@link GpuTrainStep}, {@link GpuDecode}): {@code --backend
 * NAME} (a name {@link dev.panamax.model.backend.Backends#create} takes, {@code auto} by default), {@code --precision
 * fp32|tf32|bf16} (the products' {@link MatmulPrecision}, fp32 by default), {@code --tiny},
 * {@code --steps N} (timed repetitions), {@code --warmup N} (repetitions left out before them) and, for {@link
 * GpuDecode} only, {@code --checkpoint FILE} (where to write its random checkpoint and leave it for the PyTorch peer)
 * and {@code --weights f32|f16|bf16|q8_0|q4_0} (the type its matrices are decoded from, through a GGUF file of the
 * same weights; f32 by default, the checkpoint itself).
 *
 * @param backend the backend's name
 * @param precision the products' precision
 * @param tiny whether to run the small shape that checks the program rather than the benchmark's shape
 * @param steps timed repetitions, at least 1
 * @param warmup repetitions before them, at least 0
 * @param checkpoint the file to keep the generated checkpoint in, or null for a temporary one
 * @param weights the type of the decoded matrices
 */
record BenchArguments(
        String backend,
        MatmulPrecision precision,
        boolean tiny,
        int steps,
        int warmup,
        Path checkpoint,
        GgmlType weights) {
    static BenchArguments parse(String program, String[] args, int defaultSteps, int defaultWarmup) {
        String backend = "auto";
        MatmulPrecision precision = MatmulPrecision.FP32;
        boolean tiny = false;
        int steps = defaultSteps;
        int warmup = defaultWarmup;
        Path checkpoint = null;
        GgmlType weights = GgmlType.F32;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--tiny" -> tiny = true;
                case "--backend" -> backend = value(program, args, ++i);
                case "--precision" -> precision = precision(program, value(program, args, ++i));
                case "--steps" -> steps = count(program, "--steps", value(program, args, ++i), 1);
                case "--warmup" -> warmup = count(program, "--warmup", value(program, args, ++i), 0);
                case "--checkpoint" -> checkpoint = Path.of(value(program, args, ++i));
                case "--weights" -> weights = weights(program, value(program, args, ++i));
                default ->
                    throw new IllegalArgumentException(program + ": unknown argument (" + args[i]
                            + "); usage: " + program
                            + " [--backend auto|cpu|cuda|emulated] [--precision fp32|tf32|bf16] [--tiny] [--steps N]"
                            + " [--warmup N] [--checkpoint FILE] [--weights f32|f16|bf16|q8_0|q4_0]");
            }
        }
        return new BenchArguments(backend, precision, tiny, steps, warmup, checkpoint, weights);
    }

    /** Creates the chosen backend at the chosen precision. */
    Backends.Selection open() {
        return Backends.create(backend, precision);
    }

    private static MatmulPrecision precision(String program, String text) {
        try {
            return MatmulPrecision.of(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    program + ": --precision (" + text + ") must be one of " + MatmulPrecision.names(), e);
        }
    }

    private static GgmlType weights(String program, String text) {
        for (GgmlType type : GgufLlama.COMPUTE_TYPES) {
            if (type.name().equalsIgnoreCase(text)) {
                return type;
            }
        }
        throw new IllegalArgumentException(
                program + ": --weights (" + text + ") must be one of f32, f16, bf16, q8_0, q4_0");
    }

    private static String value(String program, String[] args, int index) {
        if (index >= args.length) {
            throw new IllegalArgumentException(program + ": " + args[index - 1] + " needs a value");
        }
        return args[index];
    }

    private static int count(String program, String flag, String text, int least) {
        int value;
        try {
            value = Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(program + ": " + flag + " (" + text + ") must be an integer", e);
        }
        if (value < least) {
            throw new IllegalArgumentException(program + ": " + flag + " (" + value + ") must be >= " + least);
        }
        return value;
    }
}
