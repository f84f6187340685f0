#!/usr/bin/env bash
# The example Spring Cloud Stream apps (apps/spring): one Maven build of every
# module, outside the repository, each fat jar copied to
# $EVENTFLOW_CACHE/spring/jars/<module>.jar (what the images COPY).
#   spring-apps.sh [build]       build, unless nothing under apps/spring changed
#   spring-apps.sh test          build and run the modules' tests (always runs Maven)
#   spring-apps.sh modules       the module names
# The Maven run is skipped when a hash of apps/spring (poms and sources) equals
# the stamp of the last successful build and every jar exists.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SPRING_SRC=$REPO_ROOT/apps/spring
SPRING_CACHE=$EVENTFLOW_CACHE/spring
SPRING_JARS=$SPRING_CACHE/jars
STAMP=$SPRING_CACHE/build.stamp

# The modules, as the parent pom lists them.
modules() { sed -nE 's#^[[:space:]]*<module>([^<]+)</module>.*#\1#p' "$SPRING_SRC/pom.xml"; }

# The poms and every file under a module's src/, by path and content, and the
# Maven arguments (a README edit rebuilds nothing).
source_key() {
  { (cd "$SPRING_SRC" && find . -type f \( -name pom.xml -o -path '*/src/*' \) -print0 | sort -z | xargs -0 sha256sum)
    echo "$*"; } |
    sha256sum | cut -c1-16
}

# Maven's output goes to $MAVEN_LOG; its tail is shown when the build fails.
MAVEN_LOG=$SPRING_CACHE/maven.log
maven() { # goal args...
  command -v mvn >/dev/null || die "Maven and a JDK 17 are needed (Debian: maven openjdk-17-jdk-headless)"
  mkdir -p "$SPRING_CACHE"
  if ! (cd "$SPRING_SRC" && mvn -B -q --no-transfer-progress \
      -Dmaven.repo.local="$EVENTFLOW_CACHE/maven" \
      -Deventflow.build.dir="$SPRING_CACHE/build" "$@") >"$MAVEN_LOG" 2>&1; then
    tail -n 40 "$MAVEN_LOG" >&2
    return 1
  fi
}

copy_jars() {
  local m
  mkdir -p "$SPRING_JARS"
  for m in $(modules); do
    cp "$SPRING_CACHE/build/$m/$m.jar" "$SPRING_JARS/$m.jar.tmp"
    mv "$SPRING_JARS/$m.jar.tmp" "$SPRING_JARS/$m.jar"
  done
}

build() { # extra Maven args...
  local args=(package "$@") key m fresh=1
  key=$(source_key "${args[@]}")
  for m in $(modules); do [ -f "$SPRING_JARS/$m.jar" ] || fresh=; done
  if [ -n "$fresh" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$key" ]; then
    log "spring apps: up to date ($SPRING_JARS)"
    return 0
  fi
  local started=$SECONDS
  rm -f "$STAMP"
  maven "${args[@]}" || die "spring apps: the Maven build failed (log: $MAVEN_LOG)"
  copy_jars
  echo "$key" > "$STAMP"
  log "spring apps: built $(modules | wc -l) jars in $((SECONDS - started)) s ($SPRING_JARS)"
}

# The modules' test counts from the surefire reports, as one cargo-style
# `test result:` line, so run-tier.sh counts them with the Rust tests.
report() {
  local reports=("$SPRING_CACHE"/build/*/surefire-reports/TEST-*.xml)
  [ -f "${reports[0]}" ] || { echo "test result: FAILED. 0 passed; 0 failed; 0 ignored (no surefire report)"; return 0; }
  sed -nE 's/.*<testsuite [^>]*tests="([0-9]+)" errors="([0-9]+)" skipped="([0-9]+)" failures="([0-9]+)".*/\1 \2 \3 \4/p' "${reports[@]}" |
    awk '{t+=$1; e+=$2; s+=$3; f+=$4} END {
      bad = e + f; printf "test result: %s. %d passed; %d failed; %d ignored; (Java: the modules of apps/spring)\n",
        (bad ? "FAILED" : "ok"), t - bad - s, bad, s }'
}

case "${1:-build}" in
  build) build -DskipTests ;;
  test)
    started=$SECONDS
    rm -rf "$SPRING_CACHE"/build/*/surefire-reports
    trap report EXIT
    maven package || die "spring apps: the Maven build or a test failed (log: $MAVEN_LOG; the apps' test logs: $SPRING_CACHE/build/<module>/surefire-reports)"
    copy_jars
    source_key package -DskipTests > "$STAMP" # the jars equal a -DskipTests build's
    log "spring apps: tests passed, $(modules | wc -l) jars built in $((SECONDS - started)) s ($SPRING_JARS)" ;;
  modules) modules ;;
  *) echo "usage: $0 [build|test|modules]" >&2; exit 2 ;;
esac
