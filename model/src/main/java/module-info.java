/**
 * A GPT-style Transformer on Panamax's kernels, and the {@code panamax} command line. The command line ({@code cli},
 * run with {@code -m dev.panamax.model/dev.panamax.model.cli.Panamax}) and the JSON parser ({@code json}, a detail of
 * the file formats) are not exported: they are this module's own, not API.
 */
module dev.panamax.model {
    requires transitive dev.panamax.kernels; // Backend.weights takes the kernels' QuantizedMatrix
    requires dev.panamax.cuda;
    requires java.desktop;
    requires jdk.management;

    exports dev.panamax.model.backend;
    exports dev.panamax.model.generate;
    exports dev.panamax.model.io;
    exports dev.panamax.model.nn;
    exports dev.panamax.model.tokenizer;
    exports dev.panamax.model.train;

    provides dev.panamax.cuda.spi.HostGemm with
            dev.panamax.model.gpu.KernelsHostGemm;
}
