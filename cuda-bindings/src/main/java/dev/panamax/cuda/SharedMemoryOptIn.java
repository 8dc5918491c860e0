package dev.panamax.cuda;

import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntConsumer;

/**
 * The dynamic shared memory each kernel of a module has been allowed ({@code
 * CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES}), raised only: the attribute belongs to the function, not to a
 * launch, so lowering it for one launch could fail another thread's launch of the same kernel that had just checked
 * it. Safe for concurrent use.
 */
final class SharedMemoryOptIn {
    /** Each function's allowed bytes, by its {@code CUfunction} address. */
    private final ConcurrentHashMap<Long, Integer> allowed = new ConcurrentHashMap<>();

    /**
     * Makes sure a function may launch with {@code bytes} of dynamic shared memory, raising its limit to exactly that
     * when it is lower; {@code raise} runs under the function's lock, so concurrent raises of one function happen one
     * at a time and each is larger than the one before. When {@code raise} throws, the recorded limit stays as it was.
     *
     * @param function the {@code CUfunction}'s address
     * @param bytes the launch's dynamic shared memory
     * @param raise sets the function's attribute to its argument
     */
    void require(long function, int bytes, IntConsumer raise) {
        Integer current = allowed.get(function);
        if (current != null && current >= bytes) {
            return;
        }
        allowed.compute(function, (key, now) -> {
            if (now != null && now >= bytes) {
                return now;
            }
            raise.accept(bytes);
            return bytes;
        });
    }

    /**
     * The bytes a function has been allowed so far.
     *
     * @param function the {@code CUfunction}'s address
     * @return the largest value set, 0 when none
     */
    int allowed(long function) {
        return allowed.getOrDefault(function, 0);
    }
}
