import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.GgufValue;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.testing.TokenizerFixtures;
import dev.panamax.model.tokenizer.GgufTokenizer;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import java.nio.file.Path;
import java.util.Map;

/**
 * Writes the files compare.sh gives both implementations: the tokenizer fixtures of the JUnit tests, a 512-token
 * llama2.c vocabulary for stories260K, and stories260K as GGUF in F32, Q8_0 and Q4_0 with that vocabulary, its
 * filler pieces marked user-defined and no space prefix, so that text decoded from the model's ids tokenizes back
 * to ids close to those (the merges may split a run of plain pieces differently).
 *
 * <p>Usage: {@code java -cp <model classes and test classes> Fixtures.java OUT_DIR stories260K.bin}
 */
public class Fixtures {
    public static void main(String[] args) throws Exception {
        Path out = Path.of(args[0]);
        TokenizerFixtures.writeLlama(out.resolve("spm.gguf"));
        TokenizerFixtures.writeGpt2(out.resolve("gpt2.gguf"), "gpt-2");
        TokenizerFixtures.writeGpt2(out.resolve("llama3.gguf"), "llama-bpe");
        Llama2cTokenizer vocabulary = TokenizerFixtures.llama2cVocabulary(512);
        vocabulary.write(out.resolve("tok512-fixture.bin"));
        Map<String, GgufValue> metadata = GgufTokenizer.metadata(vocabulary);
        long[] types = ((long[]) metadata.get("tokenizer.ggml.token_type").value()).clone();
        String[] pieces = (String[]) metadata.get("tokenizer.ggml.tokens").value();
        for (int id = 0; id < pieces.length; id++) {
            if (pieces[id].startsWith("<extra_")) {
                types[id] = 4; // user-defined: matched in text before the merges, by llama.cpp and Panamax alike
            }
        }
        metadata.put("tokenizer.ggml.token_type", new GgufValue(GgufValue.Type.ARRAY, GgufValue.Type.INT32, types));
        // No space before text that follows a filler piece, or sampled text would come back with spaces added.
        metadata.put("tokenizer.ggml.add_space_prefix", GgufValue.of(false));
        try (Llama2cCheckpoint model = Llama2cCheckpoint.open(Path.of(args[1]))) {
            for (GgmlType type : new GgmlType[] {GgmlType.F32, GgmlType.Q8_0, GgmlType.Q4_0}) {
                Path file = out.resolve("stories260K-" + type.name().toLowerCase() + ".gguf");
                GgufLlama.write(file, model.config(), model.weights(), "stories260K", metadata, type);
            }
        }
    }
}
