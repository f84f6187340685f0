#!/usr/bin/env bash
# Runs one test tier's command, keeps its output, and appends the tier's
# counts to $EVENTFLOW_TEST_SUMMARY as `<tier> <passed> passed <failed> failed <ignored> ignored`.
# A tier that runs no test at all fails: an empty suite reporting green is a defect.
set -euo pipefail
tier=$1; shift
out=$(mktemp)
status=0
"$@" 2>&1 | tee "$out" || status=$?
read -r passed failed ignored < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i
    } } END { print p+0, f+0, g+0 }' "$out")
rm -f "$out"
summary=${EVENTFLOW_TEST_SUMMARY:-/dev/null}
mkdir -p "$(dirname "$summary")"
echo "$tier $passed passed $failed failed $ignored ignored" | tee -a "$summary"
if [ "$status" -ne 0 ]; then
  # Every component of the clusters and services logs into one folder.
  logs=${EVENTFLOW_LOG_DIR:-${EVENTFLOW_STATE:-/var/lib/eventflow-e2e}/logs}
  if [ -d "$logs" ]; then
    for f in "$logs"/*.log; do
      [ -f "$f" ] || continue
      echo "===== last lines of $f"; tail -n 40 "$f"
    done
  fi
  exit "$status"
fi
if [ "$passed" -eq 0 ]; then echo "tier $tier ran no tests" >&2; exit 1; fi
