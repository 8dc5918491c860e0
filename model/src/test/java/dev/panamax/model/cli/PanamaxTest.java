package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class PanamaxTest {
    private final CapturedCli cli = new CapturedCli(true);

    @Test
    void demoChecksEveryKernelAndSucceeds() {
        assertEquals(0, cli.run("demo", "--threads", "1"));
        String printed = cli.out();
        assertTrue(printed.contains("sgemm") && printed.contains("sgemv"), printed);
        assertTrue(printed.contains("softmax") && printed.contains("attention"), printed);
        assertTrue(printed.contains("All kernels match the reference."), printed);
        assertFalse(printed.matches("(?s).* 0\\.0 .*"), "no rate prints as 0.0: " + printed);
    }

    @Test
    void usageErrorsExitWithTwoAndSayWhy() {
        assertEquals(2, cli.run("frobnicate"));
        assertTrue(cli.err().contains("unknown command 'frobnicate'"), cli.err());
        assertEquals(2, cli.run("demo", "--threads", "zero"));
        assertTrue(cli.err().contains("--threads (zero) must be a whole number in [1, 1024]"), cli.err());
        assertTrue(cli.err().contains("usage: panamax demo [options]"), cli.err());
        assertEquals(2, cli.run("demo", "-t", "0"));
        assertTrue(cli.err().startsWith("panamax: -t (0) must be a whole number in [1, 1024]"), cli.err());
        assertEquals(2, cli.run("demo", "-t", "99999999999"));
        assertTrue(cli.err().contains("-t (99999999999) must be a whole number in [1, 1024]"), cli.err());
        // A count that would start that many platform threads, which the kernels' pool keeps for good.
        assertEquals(2, cli.run("demo", "--threads", "1025"));
        assertTrue(cli.err().startsWith("panamax: --threads (1025) must be a whole number in [1, 1024]"), cli.err());
        assertEquals(2, cli.run());
        assertTrue(cli.err().startsWith("usage: panamax <command> [options]"), cli.err());
        assertEquals("", cli.out(), "a usage error prints nothing on standard output");
    }

    @Test
    void everyCommandHasHelpMadeFromItsOptionTable() {
        for (Command command : Panamax.COMMANDS) {
            for (String[] args :
                    new String[][] {{command.name(), "--help"}, {command.name(), "-h"}, {"help", command.name()}}) {
                assertEquals(0, cli.run(args), String.join(" ", args));
                assertEquals(command.help(), cli.out(), String.join(" ", args));
            }
            for (Option option : command.options()) {
                assertTrue(cli.out().contains(option.spellings()), option.name());
                assertTrue(cli.out().replaceAll("\\s+", " ").contains(option.help()), option.help());
            }
        }
        assertEquals(0, cli.run("generate", "--help"));
        assertTrue(cli.out().startsWith("usage: panamax generate [options]\n"), cli.out());
        assertTrue(cli.out().contains("\n  -p, --prompt TEXT "), cli.out());
        assertTrue(cli.out().contains("\n      --top-p P "), cli.out());
        assertTrue(cli.out().replaceAll("\\s+", " ").contains("add up to P, in (0, 1] (default: 0.9)"), cli.out());
        assertTrue(cli.out().lines().allMatch(l -> l.length() <= 80), cli.out());
        assertEquals(0, cli.run("--help"));
        assertTrue(cli.out().contains("  generate   stream a continuation"), cli.out());
        assertEquals(2, cli.run("help", "nothing"));
        assertTrue(cli.err().contains("unknown command 'nothing'"), cli.err());
    }

    @Test
    void versionIsTheModules() {
        assertEquals(0, cli.run("--version"));
        assertTrue(cli.out().matches("panamax \\d+\\.\\d+\\.\\d+(-SNAPSHOT)?\\R"), cli.out());
    }

    @Test
    void optionsTakeValuesAfterASpaceOrAnEqualsSignAndShortNames() {
        CommandLine line = CommandLine.parse(GenerateCommand.COMMAND, new String[] {
            "--top-p=0.5", "-n", "7", "-p", "--looks like an option", "--print-ids", "--tokenizer=a=b"
        });
        assertEquals(0.5f, line.number(GenerateCommand.TOP_P));
        assertEquals(7, line.whole(GenerateCommand.MAX_TOKENS));
        assertEquals("--looks like an option", line.text(GenerateCommand.PROMPT));
        assertEquals("a=b", line.text(GenerateCommand.TOKENIZER));
        assertTrue(line.has(GenerateCommand.PRINT_IDS));
        assertEquals("-n", line.typed(GenerateCommand.MAX_TOKENS));
        assertEquals("--top-p", line.typed(GenerateCommand.TOP_P));
        assertEquals("--model", line.typed(GenerateCommand.MODEL), "an option not given is named by its long name");
        assertEquals(1f, line.number(GenerateCommand.TEMPERATURE), "the table's default");
        assertEquals(
                List.of("-model.bin"),
                CommandLine.parse(Panamax.INFO, new String[] {"--", "-model.bin"})
                        .operands());
        CommandLine shortWithEquals = CommandLine.parse(GenerateCommand.COMMAND, new String[] {"-n=5", "-p=a=b"});
        assertEquals(5, shortWithEquals.whole(GenerateCommand.MAX_TOKENS));
        assertEquals("a=b", shortWithEquals.text(GenerateCommand.PROMPT));
        assertEquals("-n", shortWithEquals.typed(GenerateCommand.MAX_TOKENS));
    }

    @Test
    void malformedCommandLinesNameTheOptionAsTyped() {
        String[][] cases = {
            {"unknown option '--bogus'", "--bogus"},
            {"unknown option '-x'", "-x", "1"},
            {"--print-ids takes no value", "--print-ids=yes"},
            {"-n needs a value (N)", "-n"},
            {"-s/--seed is given twice", "-s", "1", "--seed", "2"},
            {"unexpected argument 'Once upon'", "Once upon"},
        };
        for (String[] c : cases) {
            String[] args = java.util.Arrays.copyOfRange(c, 1, c.length);
            UsageException e =
                    assertThrows(UsageException.class, () -> CommandLine.parse(GenerateCommand.COMMAND, args));
            assertEquals(c[0], e.getMessage());
            assertEquals(GenerateCommand.COMMAND, e.command());
        }
        assertEquals(2, cli.run("info"));
        assertTrue(cli.err().startsWith("panamax: info needs FILE (or --model FILE)\n"), cli.err());
        assertTrue(cli.err().contains("usage: panamax info [options] [FILE]"), cli.err());
        assertEquals(2, cli.run("info", "a.bin", "-m", "b.bin"));
        assertTrue(cli.err().startsWith("panamax: give the model as FILE or as -m FILE, not both\n"), cli.err());
        assertEquals(2, cli.run("info", "a.bin", "b.bin"));
        assertTrue(cli.err().startsWith("panamax: unexpected argument 'b.bin'\n"), cli.err());
        String[][] values = {
            {"--top-p=0", "--top-p (0) must be a finite number in (0, 1]"},
            {"--top-p=NaN", "--top-p (NaN) must be a finite number in (0, 1]"},
            {"--temperature=-1", "--temperature (-1) must be a finite number >= 0"},
            {"--temperature=Infinity", "--temperature (Infinity) must be a finite number >= 0"},
            {"--top-k=1.5", "--top-k (1.5) must be a whole number >= 0"},
            {"-s=x", "-s (x) must be a whole number"},
        };
        for (String[] c : values) {
            assertEquals(2, cli.run("generate", c[0]), c[0]);
            assertTrue(cli.err().startsWith("panamax: " + c[1] + "\n"), cli.err());
        }
    }

    @Test
    void timingWaitsForTheRateToSettle() {
        // Like a kernel that C2 compiles only after 0.65 s: 50 ms a run until then, 1 ms after.
        long[] now = {0};
        Runnable compiledLate = () -> now[0] += now[0] < 650_000_000L ? 50_000_000L : 1_000_000L;
        Timing.Rate rate = Timing.measure(1, compiledLate, () -> now[0]);
        assertTrue(rate.settled());
        assertEquals(1000, rate.perSecond(), 1e-6);
        assertEquals("0.000001", rate.giga());

        // A speed that never settles (each run twice as slow as the one before) is reported as unsettled, not as a
        // number, once the time cap has passed.
        long[] duration = {1_000_000L};
        Runnable slowingDown = () -> {
            now[0] += duration[0];
            duration[0] *= 2;
        };
        now[0] = 0;
        Timing.Rate unsettled = Timing.measure(1, slowingDown, () -> now[0]);
        assertFalse(unsettled.settled());
        assertEquals("unsettled", unsettled.giga());
        assertTrue(now[0] >= Timing.CAP_NANOS, "capped: " + now[0]);
    }

    @Test
    void ratesKeepThreeSignificantDigits() {
        assertEquals("0.0412", Timing.significant(0.041234));
        assertEquals("12.3", Timing.significant(12.34));
        assertEquals("1230", Timing.significant(1234.5));
    }

    @Test
    void theReadmeShowsEachCommandsHelpAsItIs() throws IOException {
        Path readme = Path.of("..", "README.md");
        String text = Files.readString(readme);
        for (Command command : List.of(GenerateCommand.COMMAND, TrainCommand.COMMAND)) {
            assertTrue(
                    text.contains("```\n$ panamax " + command.name() + " --help\n" + command.help() + "```\n"),
                    "README.md must show the output of panamax " + command.name() + " --help:\n" + command.help());
        }
    }
}
