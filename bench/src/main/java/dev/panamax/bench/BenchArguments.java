package dev.panamax.bench;

/**
 * The command line of the GPU check's model benchmarks ({@link GpuTrainStep}, {@link GpuDecode}): {@code --backend
 * NAME} (a name {@link dev.panamax.model.backend.Backends#create} takes, {@code auto} by default), {@code --tiny},
 * {@code --steps N} (timed repetitions) and {@code --warmup N} (repetitions left out before them).
 *
 * @param backend the backend's name
 * @param tiny whether to run the small shape that checks the program rather than the benchmark's shape
 * @param steps timed repetitions, at least 1
 * @param warmup repetitions before them, at least 0
 */
record BenchArguments(String backend, boolean tiny, int steps, int warmup) {
    static BenchArguments parse(String program, String[] args, int defaultSteps, int defaultWarmup) {
        String backend = "auto";
        boolean tiny = false;
        int steps = defaultSteps;
        int warmup = defaultWarmup;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--tiny" -> tiny = true;
                case "--backend" -> backend = value(program, args, ++i);
                case "--steps" -> steps = count(program, "--steps", value(program, args, ++i), 1);
                case "--warmup" -> warmup = count(program, "--warmup", value(program, args, ++i), 0);
                default ->
                    throw new IllegalArgumentException(program + ": unknown argument (" + args[i]
                            + "); usage: " + program + " [--backend auto|cpu|cuda|emulated] [--tiny] [--steps N]"
                            + " [--warmup N]");
            }
        }
        return new BenchArguments(backend, tiny, steps, warmup);
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
