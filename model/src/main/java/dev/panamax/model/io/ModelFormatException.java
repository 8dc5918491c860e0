package dev.panamax.model.io;

import java.io.IOException;

/**
 * A model, configuration or tokenizer file that is malformed: truncated, inconsistent, of an unsupported variant, or
 * not the format it claims to be. Every loader in this module reports a bad file with exactly this exception, whose
 * message names the file (when there is one) and what is wrong, so that callers need one {@code catch} and users get
 * one readable line.
 */
public class ModelFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an exception for a file.
     *
     * @param source the file or other source the problem was found in, e.g. a path; {@code null} when there is none
     * @param problem what is wrong, as a sentence fragment without the source
     */
    public ModelFormatException(Object source, String problem) {
        super(source == null ? problem : source + ": " + problem);
    }

    /**
     * Creates an exception for a file, keeping the lower-level cause.
     *
     * @param source the file or other source the problem was found in; {@code null} when there is none
     * @param problem what is wrong, as a sentence fragment without the source
     * @param cause the exception that revealed the problem
     */
    public ModelFormatException(Object source, String problem, Throwable cause) {
        super(source == null ? problem : source + ": " + problem, cause);
    }
}
