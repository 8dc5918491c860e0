/**
 * A strict JSON parser and writer (RFC 8259) for the configuration, vocabulary and trainer-state files: {@link
 * dev.panamax.model.json.Json} parses exactly the RFC's grammar and rejects the rest (duplicate member names
 * included) with a {@link dev.panamax.model.json.JsonException} that names the source, line, column and problem, and
 * bounds what a hostile document can cost (nesting depth, number of values, characters of strings); {@link
 * dev.panamax.model.json.JsonValue} is the immutable tree it builds; {@link dev.panamax.model.json.JsonFields} reads an
 * object's members with the type and range the caller expects, naming the member's path when it does not get them.
 *
 * <p>The package depends on the JDK only: it parses text it is given and never opens a file. The file formats read
 * their files through {@code io.BoundedFiles.readJson}, which bounds a file's size, decodes it as strict UTF-8 and
 * turns a {@code JsonException} into their {@code ModelFormatException}. Not exported from the module.
 */
package dev.panamax.model.json;
