# Sourced by decode-peers.sh and startup.sh: what both read from the command-line runs they time.

# The median of the numbers on standard input, one per line; empty lines (a run that printed no rate) do not count.
median() { sort -g | awk 'NF { v[++n] = $1 } END { if (n) print (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) }'; }

# The decode rate in FILE, the standard error of panamax generate or of llama2.c's run.c.
decode_rate() {
  sed -n 's/.*decode: [0-9]* tokens, \([0-9.]*\) tokens\/s.*/\1/p;s/achieved tok\/s: \([0-9.]*\)/\1/p' "$1"
}

# The milliseconds from the JVM's start to the first token in FILE, the standard error of panamax generate.
first_token_ms() { sed -n 's/.*first token after \([0-9]*\) ms.*/\1/p' "$1"; }
