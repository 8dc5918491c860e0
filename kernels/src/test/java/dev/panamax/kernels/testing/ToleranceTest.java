package dev.panamax.kernels.testing;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ToleranceTest {
    @Test
    void plantedErrorIsReportedWithTheWorstElement() {
        double[] expected = {1, 2, 3, 4, 5};
        float[] actual = {1, 2.0001f, 3, 4.5f, 5};
        AssertionError failure =
                assertThrows(AssertionError.class, () -> Tolerance.assertClose("planted", expected, actual, 1e-3, 0));
        String message = failure.getMessage();
        assertTrue(message.contains("planted: 1 of 5 elements out of tolerance"), message);
        assertTrue(message.contains("worst at index 3"), message);
        assertTrue(message.contains("expected 4.0, actual 4.5"), message);
        assertTrue(message.contains("error 0.500 > bound 0.00100"), message);
    }

    @Test
    void worstElementIsTheLargestErrorOverBound() {
        double[] expected = {100, 1};
        float[] actual = {101, 1.5f};
        AssertionError failure =
                assertThrows(AssertionError.class, () -> Tolerance.assertClose("ratio", expected, actual, 0, 0.001));
        assertTrue(failure.getMessage().contains("2 of 2 elements"), failure.getMessage());
        assertTrue(failure.getMessage().contains("worst at index 1"), failure.getMessage());
    }

    @Test
    void valuesWithinTheirBoundPass() {
        assertDoesNotThrow(() ->
                Tolerance.assertClose("close", new double[] {1, -2, 0}, new float[] {1.0005f, -2.001f, 0}, 1e-3, 1e-3));
    }

    @Test
    void nonFiniteValuesMustMatchExactly() {
        double nan = Double.NaN;
        double inf = Double.POSITIVE_INFINITY;
        assertDoesNotThrow(() -> Tolerance.assertClose(
                "same",
                new double[] {nan, inf, -inf},
                new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY},
                0,
                0));
        assertThrows(
                AssertionError.class, () -> Tolerance.assertClose("nan", new double[] {nan}, new float[] {0}, 1, 1));
        assertThrows(
                AssertionError.class,
                () -> Tolerance.assertClose("inf", new double[] {inf}, new float[] {Float.NEGATIVE_INFINITY}, 1, 1));
        assertThrows(
                AssertionError.class,
                () -> Tolerance.assertClose("finite", new double[] {1}, new float[] {Float.NaN}, 1, 1));
    }

    @Test
    void zeroBoundDemandsExactEquality() {
        assertDoesNotThrow(() -> Tolerance.assertClose("exact", new double[] {0.5}, new float[] {0.5f}, 0, 0));
        assertThrows(
                AssertionError.class,
                () -> Tolerance.assertClose("exact", new double[] {0.5}, new float[] {0.50001f}, 0, 0));
    }

    @Test
    void seededInputsRepeat() {
        long seed = Inputs.seed("repeat");
        assertTrue(java.util.Arrays.equals(Inputs.uniform(seed, 100, -1, 1), Inputs.uniform(seed, 100, -1, 1)));
        assertTrue(java.util.Arrays.equals(Inputs.gaussian(seed, 100, 1), Inputs.gaussian(seed, 100, 1)));
    }
}
