# Sourced by decode-peers.sh and startup.sh: what both read from the command-line runs they time.

# The median of the numbers on standard input, one per line; empty lines (a run that printed no rate) do not count.
median() { sort -g | awk 'NF { v[++n] = $1 } END { if (n) print (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) }'; }

# The decode rate in FILE, the standard error of panamax generate or of llama2.c's run.c.
decode_rate() {
  sed -n 's/.*decode: [0-9]* tokens, \([0-9.]*\) tokens\/s.*/\1/p;s/achieved tok\/s: \([0-9.]*\)/\1/p' "$1"
}

# The milliseconds from the JVM's start to the first token in FILE, the standard error of panamax generate.
first_token_ms() { sed -n 's/.*first token after \([0-9]*\) ms.*/\1/p' "$1"; }

# Ends the script with STATUS after the end of each non-empty FILE, the output of COMMAND, which failed: set -e alone
# would end it with the reason hidden in those files.   failed STATUS COMMAND FILE...
failed() {
  local status=$1 command=$2 file
  shift 2
  echo "${0##*/}: $(basename "$command") failed (exit $status)" >&2
  for file in "$@"; do
    if [ -s "$file" ]; then
      echo "--- the end of $file:" >&2
      tail -n 20 "$file" >&2
    fi
  done
  exit "$status"
}

# Runs COMMAND with its standard output in OUT and its standard error in ERR; if it fails, shows the end of both (the
# java launcher writes some of its errors to standard output) and ends the script.   logged OUT ERR COMMAND [ARGS...]
logged() {
  local out=$1 err=$2
  shift 2
  "$@" >"$out" 2>"$err" || failed $? "$1" "$err" "$out"
}

# Whether BIN links libgomp, OpenMP's runtime (ldd); a pattern match, since grep -q under pipefail can fail on SIGPIPE.
links_openmp() {
  case $(ldd "$1" 2>/dev/null) in *libgomp*) return 0 ;; esac
  return 1
}

# Refuses a thread count above 1 for a run.c binary that does not link libgomp: llama2.c's `make run` and `make runfast`
# build without OpenMP, so such a binary runs one thread whatever OMP_NUM_THREADS says, and its rows would be labelled
# with threads it never used.   require_openmp BIN THREADS...
require_openmp() {
  local bin=$1 t
  shift
  for t in "$@"; do
    if [ "$t" -gt 1 ] && ! links_openmp "$bin"; then
      echo "${0##*/}: $bin does not link libgomp (ldd), so it would run $t threads on one: build it with llama2.c's" \
        "\`make runomp\` (see bench/peers/README.md), or give --threads 1" >&2
      exit 2
    fi
  done
}

# One line on how BIN was built, as far as the binary says: whether it links libgomp, the compiler in its .comment
# section, and the optimisation and target switches gcc records with -frecord-gcc-switches.
describe_build() {
  local openmp=no compiler switches
  links_openmp "$1" && openmp=yes
  compiler=$(readelf -p .comment "$1" 2>/dev/null | sed -n 's/^ *\[ *[0-9a-f]*\] *//p' | sed -n 1p || true)
  switches=$(readelf -p .GCC.command.line "$1" 2>/dev/null | sed -n 's/^ *\[ *[0-9a-f]*\] *//p' | tr ' ' '\n' |
    sed -n -E '/^-(O|f|march=|mtune=)/p' | paste -sd ' ' - || true)
  echo "# $1: OpenMP (libgomp) $openmp; ${compiler:-compiler unknown}; switches" \
    "${switches:-not recorded (build with CC=\"gcc -frecord-gcc-switches\" to record them)}"
}
