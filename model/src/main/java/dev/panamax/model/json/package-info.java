/**
 * A strict JSON parser and writer (RFC 8259) for the configuration, vocabulary and trainer-state files: {@link
 * dev.panamax.model.json.Json} parses exactly the RFC's grammar and rejects the rest (duplicate member names
 * included) with a {@code ModelFormatException} that names the source, line, column and problem, and bounds what a
 * hostile file can cost (size, nesting depth, number of values, characters of strings); {@link
 * dev.panamax.model.json.JsonValue} is the immutable tree it builds; {@link dev.panamax.model.json.JsonFields} reads an
 * object's members with the type and range the caller expects, naming the member's path when it does not get them.
 */
package dev.panamax.model.json;
