package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.panamax.cuda.ffi.CudaDriverFfi;
import dev.panamax.cuda.ffi.CudaFfi;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** Every generated downcall resolves against the real libcudart, libcublas and (where a driver is) libcuda. */
class BindingsTest {
    @Test
    void everyBoundFunctionResolves() throws ReflectiveOperationException {
        NativeLibraries.requireCudart();
        NativeLibraries.requireCublas();
        assertEquals(boundFunctions("jextract.args"), resolve(CudaFfi.class), "functions generated vs. jextract.args");
    }

    @Test
    void everyBoundDriverFunctionResolves() throws ReflectiveOperationException {
        Assumptions.assumeTrue(
                Libraries.Driver.FOUND.path().isPresent(),
                () -> "no CUDA driver here: " + Libraries.Driver.FOUND.reason());
        assertEquals(
                boundFunctions("jextract.driver.args"),
                resolve(CudaDriverFfi.class),
                "functions generated vs. jextract.driver.args");
    }

    /** Resolves every function a generated header class binds; returns their names. */
    private static Set<String> resolve(Class<?> bindings) throws ReflectiveOperationException {
        Set<String> resolved = new TreeSet<>();
        for (Method method : bindings.getMethods()) {
            if (method.getName().endsWith("$address") && method.getParameterCount() == 0) {
                String function = method.getName().substring(0, method.getName().length() - "$address".length());
                MemorySegment address;
                try {
                    address = (MemorySegment) method.invoke(null);
                } catch (InvocationTargetException e) {
                    throw new AssertionError(function + " does not resolve", e.getCause());
                }
                assertNotEquals(0, address.address(), function);
                resolved.add(function);
            }
        }
        return resolved;
    }

    /** The functions a jextract arguments file asks for: the generated class must hold exactly these. */
    static Set<String> boundFunctions(String argsFile) {
        try {
            return Files.readAllLines(Path.of("jextract", argsFile)).stream()
                    .filter(line -> line.startsWith("--include-function "))
                    .map(line -> line.substring("--include-function ".length()).strip())
                    .collect(Collectors.toCollection(TreeSet::new));
        } catch (IOException e) {
            throw new AssertionError("cannot read jextract/" + argsFile + " (tests run in the module folder)", e);
        }
    }
}
