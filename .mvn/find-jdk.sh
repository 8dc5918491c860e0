# Sourced by the launchers: sets JAVA_HOME to a JDK 25 or newer, or exits with one line saying how. Run with bash (as
# ./mvnw, a POSIX sh script, does) it prints that JDK's path instead.
# Order: $JAVA_HOME if it is 25+, then `java` on PATH, then the usual install folders (newest first).
panamax_java_feature() { # prints the feature version of the JDK at $1 (e.g. 25), or nothing
  [ -x "$1/bin/java" ] && [ -x "$1/bin/javac" ] || return 0
  # Probed without the user's JVM options, which an older JDK may refuse, and never failing: callers source this file
  # under set -e -o pipefail, where a refused option would end them without a word.
  { JAVA_TOOL_OPTIONS= JDK_JAVA_OPTIONS= _JAVA_OPTIONS= "$1/bin/java" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9][0-9]*\).*/\1/p' | head -n 1; } || true
}
panamax_find_jdk() {
  local candidate version
  local -a candidates=()
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  if command -v java >/dev/null 2>&1; then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  for candidate in $(ls -d /usr/lib/jvm/* /opt/java/* /opt/jdk* "$HOME"/.sdkman/candidates/java/* \
    "$HOME"/.jdks/* /Library/Java/JavaVirtualMachines/*/Contents/Home 2>/dev/null | sort -rV); do
    candidates+=("$candidate")
  done
  for candidate in "${candidates[@]}"; do
    version=$(panamax_java_feature "$candidate") || version=
    if [ -n "$version" ] && [ "$version" -ge 25 ]; then
      export JAVA_HOME="$candidate"
      return 0
    fi
  done
  echo "Panamax needs JDK 25 or newer (found none in JAVA_HOME, PATH or /usr/lib/jvm); install one and set JAVA_HOME to it." >&2
  exit 1
}
panamax_find_jdk
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  printf '%s\n' "$JAVA_HOME"
fi
