package dev.panamax.model.io;

import java.util.List;

/**
 * Where a tensor lies in a safetensors file, as its header says (and as {@link SafeTensors} has checked).
 *
 * @param name the tensor's name
 * @param dtype its element type
 * @param shape its dimensions, outermost first; empty for a scalar
 * @param begin the offset of its first byte in the data area (after the header)
 * @param end the offset after its last byte
 */
public record TensorInfo(String name, DType dtype, List<Long> shape, long begin, long end) {
    /** Copies the shape. */
    public TensorInfo {
        shape = List.copyOf(shape);
    }

    /**
     * Returns the number of elements: the product of the shape.
     *
     * @return the count, 1 for a scalar
     * @throws ArithmeticException if it overflows a long
     */
    public long elementCount() {
        long count = 1;
        for (long dim : shape) {
            count = Math.multiplyExact(count, dim);
        }
        return count;
    }
}
