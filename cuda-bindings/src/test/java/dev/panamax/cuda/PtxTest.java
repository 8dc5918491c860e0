package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Reading kernels' parameters and static shared memory from PTX, as nvcc writes it. */
class PtxTest {
    @Test
    void readsTheSampleKernels() throws IOException {
        Map<String, Ptx.Entry> entries = Ptx.entries(
                "samples.ptx", Files.readString(Path.of("src/main/resources/dev/panamax/cuda/ptx/samples.ptx")));
        assertEquals(new Ptx.Entry("vector_add", List.of("u64", "u64", "u64", "u32"), 0), entries.get("vector_add"));
        assertEquals(new Ptx.Entry("block_sum", List.of("u64", "u64", "u32"), 0), entries.get("block_sum"));
        assertEquals(new Ptx.Entry("warp_sum", List.of("u64", "u64", "u32"), 32 * 4), entries.get("warp_sum"));
        assertEquals(
                List.of("u32", "u32", "u32", "f32", "u64", "u32", "u64", "u32", "f32", "u64", "u32"),
                entries.get("sgemm_tiled").parameters());
        assertEquals(16 * 16 * 4 + 16 * 17 * 4, entries.get("sgemm_tiled").staticSharedBytes());
        assertEquals(new Ptx.Entry("empty_kernel", List.of(), 0), entries.get("empty_kernel"));
        assertEquals(6, entries.size());
    }

    @Test
    void attributesModuleScopeSharedMemoryByItsMangledOwner() {
        String ptx = """
                .shared .align 4 .b8 _ZZ3oneE5tiles[64];
                .shared .align 4 .b8 _ZZ6helperE7scratch[16];
                .extern .shared .align 16 .b8 dynamic[];
                .visible .entry one(
                \t.param .u64 one_param_0
                )
                {
                \tret;
                }
                .visible .entry two()
                {
                \t.shared .align 8 .b8 _ZZ3twoE4mine[8];
                \tret;
                }
                """;
        Map<String, Ptx.Entry> entries = Ptx.entries("test", ptx);
        assertEquals(64 + 16, entries.get("one").staticSharedBytes(), "its own array and a device function's");
        assertEquals(8 + 16, entries.get("two").staticSharedBytes(), "not one's array, dynamic memory not counted");
        assertEquals(List.of(), entries.get("two").parameters());
    }

    @Test
    void readsTheIsaVersionOfTheCommittedPtx() throws IOException {
        for (String name : List.of("samples.ptx", "transformer.ptx")) {
            String ptx = Files.readString(Path.of("src/main/resources/dev/panamax/cuda/ptx/" + name));
            Ptx.IsaVersion version = Ptx.isaVersion(ptx).orElseThrow();
            assertEquals(new Ptx.IsaVersion(9, 0), version, name);
            assertEquals(13000, version.minimumDriver(), name);
        }
        assertEquals(
                Optional.of(new Ptx.IsaVersion(8, 5)),
                Ptx.isaVersion("// .version 9.9 in a comment\n/* .version 9.8 */\n  .version 8.5\n.target sm_80\n"));
        assertEquals(Optional.empty(), Ptx.isaVersion(".target sm_80\n"));
        assertEquals(Optional.empty(), Ptx.isaVersion(".version 99999999999.0\n"));
    }

    @Test
    void mapsPtxIsaVersionsToTheFirstCudaDriverThatLoadsThem() {
        int[][] isaAndCuda = {
            {6, 5, 0},
            {7, 0, 11000},
            {7, 8, 11080},
            {8, 0, 12000},
            {8, 4, 12040},
            {8, 5, 12050},
            {8, 6, 12070},
            {8, 7, 12080},
            {8, 8, 12090},
            {9, 0, 13000},
            {9, 1, 13010},
            {9, 4, 13040}
        };
        for (int[] row : isaAndCuda) {
            assertEquals(
                    row[2], new Ptx.IsaVersion(row[0], row[1]).minimumDriver(), "PTX ISA " + row[0] + "." + row[1]);
        }
    }

    @Test
    void refusesPtxNewerThanTheDriverWithBothVersions() {
        String ptx = ".version 9.0\n.target sm_80\n";
        Ptx.requireLoadableBy("transformer.ptx", ptx, 13000);
        Ptx.requireLoadableBy("transformer.ptx", ptx, 13020);
        Ptx.requireLoadableBy("no-version.ptx", ".target sm_80\n", 11000);
        CudaUnavailableException e = assertThrows(
                CudaUnavailableException.class, () -> Ptx.requireLoadableBy("transformer.ptx", ptx, 12080));
        assertEquals(
                "transformer.ptx is PTX ISA 9.0, which needs a driver for CUDA 13.0 or newer, but the NVIDIA driver"
                        + " here supports CUDA 12.8 (cuDriverGetVersion 12080): update the NVIDIA driver",
                e.reason());
        assertEquals("CUDA cannot run here: " + e.reason(), e.getMessage());
        Ptx.requireLoadableBy("old.ptx", ".version 8.8\n", 12090);
        assertThrows(CudaUnavailableException.class, () -> Ptx.requireLoadableBy("old.ptx", ".version 8.8\n", 12080));
    }

    /**
     * PTX for sm_80 on an older GPU (a Turing T4, which CUDA 13's drivers still run) fails in the driver's JIT; that
     * failure becomes the "CUDA cannot run here" state a caller falls back to the CPU on, naming the target.
     */
    @Test
    void aGpuThePtxIsNotForIsUnavailableNotAnError() {
        String ptx = ".version 9.0\n.target sm_80\n.address_size 64\n";
        assertEquals(Optional.of("sm_80"), Ptx.target(ptx));
        assertEquals(Optional.empty(), Ptx.target(".version 9.0\n"));
        CudaException noBinary = new CudaException(
                "cuModuleLoadDataEx",
                209,
                "CUDA_ERROR_NO_BINARY_FOR_GPU",
                "no kernel image is available for execution");
        CudaException unavailable = DriverKernels.unloadable("transformer.ptx", ptx, noBinary);
        assertEquals(CudaUnavailableException.class, unavailable.getClass());
        assertTrue(
                ((CudaUnavailableException) unavailable)
                        .reason()
                        .startsWith("transformer.ptx is PTX for sm_80 and later GPUs, which the driver cannot compile"
                                + " for this one: "),
                unavailable.getMessage());
        CudaException outOfMemory =
                new CudaException("cuModuleLoadDataEx", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory");
        assertEquals(outOfMemory, DriverKernels.unloadable("transformer.ptx", ptx, outOfMemory));
    }

    @Test
    void rejectsTextWithoutKernels() {
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> Ptx.entries("empty.ptx", ".version 9.0\n.target sm_80\n"));
        assertEquals("empty.ptx declares no kernel (.entry)", e.getMessage());
        IllegalArgumentException open = assertThrows(
                IllegalArgumentException.class,
                () -> Ptx.entries("cut.ptx", ".visible .entry k(.param .u32 n)\n{\nret;\n"));
        assertEquals("cut.ptx: the body of .entry k is missing or not closed", open.getMessage());
    }
}
