package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

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
import org.junit.jupiter.api.Test;

/** Every generated downcall resolves against the real libcudart and libcublas found on this machine. */
class BindingsTest {
    @Test
    void everyBoundFunctionResolves() throws ReflectiveOperationException {
        NativeLibraries.requireCudart();
        NativeLibraries.requireCublas();
        Set<String> resolved = new TreeSet<>();
        for (Method method : CudaFfi.class.getMethods()) {
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
        assertEquals(boundFunctions(), resolved, "functions generated vs. --include-function in jextract.args");
    }

    /** The functions jextract.args asks for: the generated class must hold exactly these. */
    private static Set<String> boundFunctions() {
        try {
            return Files.readAllLines(Path.of("jextract", "jextract.args")).stream()
                    .filter(line -> line.startsWith("--include-function "))
                    .map(line -> line.substring("--include-function ".length()).strip())
                    .collect(Collectors.toCollection(TreeSet::new));
        } catch (IOException e) {
            throw new AssertionError("cannot read jextract/jextract.args (tests run in the module folder)", e);
        }
    }
}
