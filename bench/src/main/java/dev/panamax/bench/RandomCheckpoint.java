package dev.panamax.bench;

import dev.panamax.model.io.Llama2cCheckpoint;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Writes the llama2.c checkpoint with random weights that {@link GenerateBench} and {@link DecodeProfile} measure, to
 * a file, so that the peers ({@code run.c}, llama.cpp after its converter) run on the very same weights: {@code
 * RandomCheckpoint 15M|110M|1B FILE} (seed 1, as the benchmarks use; {@code 1B} is TinyLlama's shape).
 */
public final class RandomCheckpoint {
    private RandomCheckpoint() {}

    /**
     * Writes the file.
     *
     * @param args the shape and the file
     * @throws IOException if the file cannot be written
     */
    public static void main(String[] args) throws IOException {
        if (args.length != 2) {
            throw new IllegalArgumentException("usage: RandomCheckpoint 15M|110M|1B FILE");
        }
        Llama2cCheckpoint.writeRandom(Path.of(args[1]), GenerateBench.config(args[0]), 1);
    }
}
