package dev.panamax.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.panamax.model.io.GgmlType;
import org.junit.jupiter.api.Test;

/** The GPU check's model benchmarks' command line: the weights' type, and refusals that name the option. */
class BenchArgumentsTest {
    @Test
    void weightsNameAComputeTypeInEitherCase() {
        assertEquals(
                GgmlType.F32,
                BenchArguments.parse("GpuDecode", new String[0], 3, 1).weights());
        assertEquals(
                GgmlType.Q8_0,
                BenchArguments.parse("GpuDecode", new String[] {"--weights", "q8_0"}, 3, 1)
                        .weights());
        assertEquals(
                GgmlType.BF16,
                BenchArguments.parse("GpuDecode", new String[] {"--weights", "BF16"}, 3, 1)
                        .weights());
    }

    @Test
    void otherTypesAndTrainingOnQuantizedWeightsAreRefused() {
        IllegalArgumentException unknown = assertThrows(
                IllegalArgumentException.class,
                () -> BenchArguments.parse("GpuDecode", new String[] {"--weights", "q5_k"}, 3, 1));
        assertEquals("GpuDecode: --weights (q5_k) must be one of f32, f16, bf16, q8_0, q4_0", unknown.getMessage());
        IllegalArgumentException training = assertThrows(
                IllegalArgumentException.class,
                () -> GpuTrainStep.main(new String[] {"--weights", "q8_0", "--backend", "cpu"}));
        assertEquals(
                "GpuTrainStep: --checkpoint and --weights are GpuDecode's; training starts from random float32"
                        + " weights in memory",
                training.getMessage());
    }
}
