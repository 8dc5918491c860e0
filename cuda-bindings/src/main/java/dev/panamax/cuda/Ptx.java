package dev.panamax.cuda;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What {@link CudaModule} reads from PTX text before any driver sees it: each kernel ({@code .entry}) with its
 * parameters' PTX types and its static shared memory, so launches can be checked in Java.
 */
final class Ptx {
    private static final Pattern ENTRY = Pattern.compile("\\.entry\\s+([A-Za-z_$%][\\w$]*)\\s*");
    private static final Pattern PARAMETER_TYPE = Pattern.compile("\\.([usbf](?:8|16|32|64))\\b");
    private static final Pattern SHARED = Pattern.compile(
            "(?<!\\.extern\\s)\\.shared\\s+(?:\\.align\\s+\\d+\\s+)?\\.[usbf](8|16|32|64)\\s+([A-Za-z_$%][\\w$]*)(?:\\[(\\d+)])?");

    private static final Pattern VERSION = Pattern.compile("(?m)^\\s*\\.version\\s+(\\d+)\\.(\\d+)\\b");
    private static final Pattern TARGET = Pattern.compile("(?m)^\\s*\\.target\\s+(sm_\\d+[a-z]?)\\b");

    private Ptx() {}

    /**
     * A PTX ISA version, as a module's {@code .version} directive declares it.
     *
     * @param major the major version
     * @param minor the minor version
     */
    record IsaVersion(int major, int minor) {
        /**
         * The oldest CUDA whose driver loads PTX of this version, as {@code cuDriverGetVersion} encodes it ({@code
         * 1000·major + 10·minor}). From the PTX ISA's release history (PTX ISA documentation, "Release Notes"): PTX
         * ISA 7.0 to 7.8 came with CUDA 11.0 to 11.8, 8.0 to 8.5 with CUDA 12.0 to 12.5, 8.6 with 12.7, 8.7 with 12.8,
         * 8.8 with 12.9, 9.0 with 13.0 and 9.1 with 13.1; later versions are assumed to follow 9.x's pattern (CUDA
         * major = PTX major + 4, same minor), which at worst lets the driver refuse the module itself. Versions before
         * 7.0 predate CUDA 11, the oldest driver these bindings run on, and need nothing more.
         *
         * @return the driver version needed, 0 for any
         */
        int minimumDriver() {
            if (major < 7) {
                return 0;
            }
            if (major == 8 && minor >= 6) {
                return 12000 + 10 * (minor + 1);
            }
            return 1000 * (major + 4) + 10 * minor;
        }

        @Override
        public String toString() {
            return major + "." + minor;
        }
    }

    /**
     * The PTX ISA version a module declares ({@code .version X.Y}, its first directive).
     *
     * @param ptx the text
     * @return the version, or empty when the text has no {@code .version} directive (the driver then rejects it)
     */
    static Optional<IsaVersion> isaVersion(String ptx) {
        Matcher version = VERSION.matcher(withoutComments(ptx));
        if (!version.find()) {
            return Optional.empty();
        }
        try {
            return Optional.of(new IsaVersion(Integer.parseInt(version.group(1)), Integer.parseInt(version.group(2))));
        } catch (NumberFormatException e) {
            return Optional.empty();
        }
    }

    /**
     * The architecture PTX is compiled for, from its {@code .target} directive.
     *
     * @return e.g. {@code sm_80}, or empty when the text names none
     */
    static Optional<String> target(String ptx) {
        Matcher m = TARGET.matcher(ptx);
        return m.find() ? Optional.of(m.group(1)) : Optional.empty();
    }

    /**
     * Refuses PTX that the driver is too old to load, before the driver sees it, with both versions and the remedy;
     * without this check the driver's own refusal is an opaque {@code CUDA_ERROR_UNSUPPORTED_PTX_VERSION}.
     *
     * @param what names the PTX in messages
     * @param ptx the text
     * @param driverVersion the CUDA version the driver supports, as {@code cuDriverGetVersion} encodes it
     * @throws CudaUnavailableException when the PTX declares a version newer than the driver loads
     */
    static void requireLoadableBy(String what, String ptx, int driverVersion) {
        IsaVersion declared = isaVersion(ptx).orElse(null);
        if (declared == null || driverVersion >= declared.minimumDriver()) {
            return;
        }
        Version needed = Version.ofCuda(declared.minimumDriver());
        Version driver = Version.ofCuda(driverVersion);
        throw new CudaUnavailableException(what + " is PTX ISA " + declared + ", which needs a driver for CUDA "
                + needed.major() + "." + needed.minor() + " or newer, but the NVIDIA driver here supports CUDA "
                + driver.major() + "." + driver.minor() + " (cuDriverGetVersion " + driverVersion
                + "): update the NVIDIA driver");
    }

    /**
     * One kernel.
     *
     * @param name its name, as {@code cuModuleGetFunction} takes it
     * @param parameters its parameters' PTX types in order, e.g. {@code u64}, {@code u32}, {@code f32}; {@code
     *     aggregate} for one passed as a byte array (a struct)
     * @param staticSharedBytes the {@code __shared__} memory it declares, in bytes
     */
    record Entry(String name, List<String> parameters, long staticSharedBytes) {}

    /**
     * The kernels of a module, in the order the PTX declares them.
     *
     * @param what names the PTX in messages
     * @param ptx the text
     * @return the entries by name
     * @throws IllegalArgumentException when the text declares no kernel or a malformed one
     */
    static Map<String, Entry> entries(String what, String ptx) {
        String text = withoutComments(ptx);
        Map<String, List<String>> parameters = new LinkedHashMap<>();
        Map<String, Long> shared = new LinkedHashMap<>();
        StringBuilder moduleScope = new StringBuilder();
        int scanned = 0;
        Matcher entry = ENTRY.matcher(text);
        while (entry.find(scanned)) {
            String name = entry.group(1);
            moduleScope.append(text, scanned, entry.start());
            int at = entry.end();
            List<String> types = new ArrayList<>();
            if (at < text.length() && text.charAt(at) == '(') {
                int close = text.indexOf(')', at);
                if (close < 0) {
                    throw new IllegalArgumentException(
                            what + ": the parameter list of .entry " + name + " is not closed");
                }
                for (String parameter : text.substring(at + 1, close).split(",")) {
                    if (!parameter.isBlank()) {
                        types.add(parameterType(what, name, parameter));
                    }
                }
                at = close + 1;
            }
            int open = text.indexOf('{', at);
            int end = open < 0 ? -1 : closingBrace(text, open);
            if (end < 0) {
                throw new IllegalArgumentException(what + ": the body of .entry " + name + " is missing or not closed");
            }
            parameters.put(name, List.copyOf(types));
            shared.put(name, sharedBytes(text.substring(open, end), name, null));
            scanned = end;
        }
        moduleScope.append(text, scanned, text.length());
        if (parameters.isEmpty()) {
            throw new IllegalArgumentException(what + " declares no kernel (.entry)");
        }
        Map<String, Entry> entries = new LinkedHashMap<>();
        for (var kernel : parameters.entrySet()) {
            String name = kernel.getKey();
            long bytes = shared.get(name) + sharedBytes(moduleScope.toString(), name, parameters.keySet());
            entries.put(name, new Entry(name, kernel.getValue(), bytes));
        }
        return Map.copyOf(entries);
    }

    private static String parameterType(String what, String kernel, String parameter) {
        if (parameter.contains("[")) {
            return "aggregate";
        }
        Matcher type = PARAMETER_TYPE.matcher(parameter.replaceFirst("^\\s*\\.param", ""));
        if (!type.find()) {
            throw new IllegalArgumentException(
                    what + ": cannot read the type of a parameter of " + kernel + ": " + parameter.strip());
        }
        return type.group(1);
    }

    /**
     * The bytes of the {@code .shared} variables in {@code text} that belong to {@code kernel}: all of them inside an
     * entry's body ({@code kernels} null); at module scope, those whose mangled name places them in this kernel
     * ({@code _ZZ<length><name>E…}), and, conservatively, those of no kernel in {@code kernels} (a device function's).
     */
    private static long sharedBytes(String text, String kernel, java.util.Set<String> kernels) {
        long bytes = 0;
        Matcher shared = SHARED.matcher(text);
        while (shared.find()) {
            String variable = shared.group(2);
            if (kernels != null) {
                String owner = localStaticOwner(variable);
                if (owner != null && kernels.contains(owner) && !owner.equals(kernel)) {
                    continue;
                }
            }
            long count = shared.group(3) == null ? 1 : Long.parseLong(shared.group(3));
            bytes += Integer.parseInt(shared.group(1)) / 8 * count;
        }
        return bytes;
    }

    /** The function a mangled local static ({@code _ZZ9block_sumE5cache}) belongs to, or null. */
    private static String localStaticOwner(String variable) {
        Matcher mangled = Pattern.compile("_ZZ(\\d+)").matcher(variable);
        if (!mangled.lookingAt()) {
            return null;
        }
        int length = Integer.parseInt(mangled.group(1));
        int start = mangled.end();
        return start + length <= variable.length() ? variable.substring(start, start + length) : null;
    }

    private static int closingBrace(String text, int open) {
        int depth = 0;
        for (int i = open; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '{') {
                depth++;
            } else if (c == '}' && --depth == 0) {
                return i + 1;
            }
        }
        return -1;
    }

    private static String withoutComments(String ptx) {
        return ptx.replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\\n]*", "");
    }
}
