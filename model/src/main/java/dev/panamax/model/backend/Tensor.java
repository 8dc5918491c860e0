package dev.panamax.model.backend;

/**
 * A handle to a row-major float32 matrix owned by a {@link Backend}: the model sees only its shape and asks the backend
 * for views, so the storage may be host memory or device memory. A view shares its parent's storage.
 */
public interface Tensor {
    /**
     * Returns the number of rows.
     *
     * @return the rows, at least 0
     */
    int rows();

    /**
     * Returns the number of columns.
     *
     * @return the columns, at least 0
     */
    int cols();

    /**
     * A view of consecutive rows.
     *
     * @param from the first row, at least 0
     * @param count the number of rows; {@code from + count <= rows()}
     * @return the view, sharing this tensor's storage
     * @throws IndexOutOfBoundsException if the range is not inside the tensor
     */
    Tensor rows(int from, int count);

    /**
     * A view of consecutive columns (of every row).
     *
     * @param from the first column, at least 0
     * @param count the number of columns; {@code from + count <= cols()}
     * @return the view, sharing this tensor's storage
     * @throws IndexOutOfBoundsException if the range is not inside the tensor
     */
    Tensor columns(int from, int count);
}
