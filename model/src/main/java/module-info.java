/** A GPT-style Transformer on Panamax's kernels, and the {@code panamax} command line. */
module dev.panamax.model {
    requires dev.panamax.kernels;
    requires dev.panamax.cuda;
    requires java.desktop;

    exports dev.panamax.model.backend;
    exports dev.panamax.model.cli;
    exports dev.panamax.model.generate;
    exports dev.panamax.model.io;
    exports dev.panamax.model.json;
    exports dev.panamax.model.nn;
    exports dev.panamax.model.tokenizer;
    exports dev.panamax.model.train;

    provides dev.panamax.cuda.spi.HostGemm with
            dev.panamax.model.gpu.KernelsHostGemm;
}
