#!/usr/bin/env bash
# Builds the Java side of the Spring side-by-side benchmark (bench/README.md)
# when its sources changed: the Spring Boot account web app and the Spring
# Cloud Stream consumer (fat jars in $EVENTFLOW_CACHE/spring-bench/jars), and RabbitMQ
# PerfTest with its dependencies ($EVENTFLOW_CACHE/perftest/<version>/lib).
# Every build output and the Maven repository stay outside the repository.
# A stamp (hash of bench/spring/** and bench/perftest/pom.xml) skips Maven
# when nothing changed and the outputs are present.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${EVENTFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eventflow}
MAVEN_REPO=$CACHE/maven
JARS=$CACHE/spring-bench/jars
STAMP=$CACHE/spring-bench/build.stamp

die() { echo "bench/build.sh: $*" >&2; exit 1; }
command -v java >/dev/null || die "java is not on PATH (OpenJDK 17 is needed for the Spring side)"
command -v mvn >/dev/null || die "mvn is not on PATH (Maven builds the Spring jars and fetches PerfTest)"

cd "$ROOT"
perftest_version=$(sed -n 's:.*<perftest.version>\(.*\)</perftest.version>.*:\1:p' bench/perftest/pom.xml)
[ -n "$perftest_version" ] || die "no <perftest.version> in bench/perftest/pom.xml"
PERFTEST_LIB=$CACHE/perftest/$perftest_version/lib

hash=$( { find bench/spring bench/perftest/pom.xml -type f | LC_ALL=C sort | xargs sha256sum; java -version 2>&1; } | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$hash" ] \
   && [ -f "$JARS/bench-account-web.jar" ] && [ -f "$JARS/bench-consumer.jar" ] \
   && compgen -G "$PERFTEST_LIB/perf-test-*.jar" >/dev/null; then
  echo "bench jars up to date ($JARS, $PERFTEST_LIB)"
  exit 0
fi

# Maven's output goes to $MAVEN_LOG; its tail is shown when a build fails.
MAVEN_LOG=$CACHE/spring-bench/maven.log
mkdir -p "$(dirname "$MAVEN_LOG")"
mvn_() {
  mvn -B -q --no-transfer-progress -Dmaven.repo.local="$MAVEN_REPO" "$@" >>"$MAVEN_LOG" 2>&1 ||
    { tail -n 40 "$MAVEN_LOG" >&2; die "Maven failed (log: $MAVEN_LOG)"; }
}
: >"$MAVEN_LOG"
start=$SECONDS
echo "building the Spring bench jars (Maven) ..."
mvn_ -f bench/spring/pom.xml -Dbench.out="$CACHE/spring-bench" -DskipTests package
echo "fetching RabbitMQ PerfTest $perftest_version and its dependencies ..."
mvn_ -f bench/perftest/pom.xml -Dperftest.out="$CACHE/perftest/$perftest_version" package
for jar in bench-account-web bench-consumer; do
  [ -f "$JARS/$jar.jar" ] || die "Maven ran but $JARS/$jar.jar is missing"
done
echo "$hash" > "$STAMP"
echo "bench jars built in $((SECONDS - start)) s: $JARS, $PERFTEST_LIB"
