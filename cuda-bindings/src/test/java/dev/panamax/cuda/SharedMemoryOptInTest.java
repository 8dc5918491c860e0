package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * The per-kernel dynamic shared memory allowance of launches on a GPU, with the driver call replaced by a recorder:
 * raised only, never lowered, under concurrent launches of different sizes.
 */
class SharedMemoryOptInTest {
    @Test
    void raisesOnlyWhenALaunchNeedsMore() {
        SharedMemoryOptIn optIn = new SharedMemoryOptIn();
        List<Integer> set = new ArrayList<>();
        optIn.require(1, 60_000, set::add);
        optIn.require(1, 50_000, set::add);
        optIn.require(1, 60_000, set::add);
        optIn.require(1, 100_000, set::add);
        optIn.require(2, 50_000, set::add);
        assertEquals(List.of(60_000, 100_000, 50_000), set);
        assertEquals(100_000, optIn.allowed(1));
        assertEquals(50_000, optIn.allowed(2));
        assertEquals(0, optIn.allowed(3));
    }

    @Test
    void aFailedRaiseKeepsThePreviousAllowance() {
        SharedMemoryOptIn optIn = new SharedMemoryOptIn();
        optIn.require(1, 60_000, bytes -> {});
        assertThrows(
                CudaException.class,
                () -> optIn.require(1, 300_000, bytes -> {
                    throw new CudaException(
                            "cuFuncSetAttribute", null, 1, "CUDA_ERROR_INVALID_VALUE", "invalid argument");
                }));
        assertEquals(60_000, optIn.allowed(1));
        List<Integer> set = new ArrayList<>();
        optIn.require(1, 70_000, set::add);
        assertEquals(List.of(70_000), set);
    }

    @Test
    void concurrentLaunchesNeverLowerTheAllowance() throws Exception {
        SharedMemoryOptIn optIn = new SharedMemoryOptIn();
        List<Integer> set = Collections.synchronizedList(new ArrayList<>());
        int threads = 8;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> launches = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                launches.add(pool.submit(() -> {
                    start.await();
                    for (int i = 0; i < 2_000; i++) {
                        int bytes = 49_152 + ((i * 7919 + thread * 104_729) % 180_000);
                        optIn.require(7, bytes, set::add);
                        assertTrue(optIn.allowed(7) >= bytes, "allowed below a launch that had opted in");
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> launch : launches) {
                launch.get();
            }
        } finally {
            pool.shutdownNow();
        }
        for (int i = 1; i < set.size(); i++) {
            assertTrue(set.get(i) > set.get(i - 1), "the allowance was lowered: " + set.subList(i - 1, i + 1));
        }
        assertEquals(set.getLast(), optIn.allowed(7));
    }
}
