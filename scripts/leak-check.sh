#!/usr/bin/env bash
# Run a command (make test, bench, soak) with a temporary directory of its own
# and fail when anything it started is still running once it returns.
#
# Every process the command starts inherits TMPDIR=<its run directory>, so
# leftovers are found precisely by that environment entry, never by a name.
# A test binary that was SIGKILLed could not clean up after itself; such
# orphans of earlier runs (parent: init, TMPDIR under the runs directory)
# are swept before the command starts.
set -uo pipefail
runs="${PUSHSYNC_RUNS_DIR:-/tmp/pushsync-runs}"
mkdir -p "$runs"

# Field $1 (1: state, 2: parent pid) of /proc/<pid>/stat, after the name.
stat_field() { sed 's/.*) //' "/proc/$2/stat" 2>/dev/null | cut -d' ' -f"$1"; }

# Live processes (not zombies) whose environment has an entry starting with
# TMPDIR=$1, one pid per line.
holding() {
  local pattern dir pid
  pattern="^TMPDIR=$(printf '%s' "$1" | sed 's/[][\.*^$/]/\\&/g')"
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" = "$$" ] && continue
    [ "$(stat_field 1 "$pid")" = Z ] && continue
    grep -qz -- "$pattern" "$dir/environ" 2>/dev/null && echo "$pid"
  done
}

swept=0
for pid in $(holding "$runs/run."); do
  if [ "$(stat_field 2 "$pid")" = 1 ]; then
    kill -KILL "$pid" 2>/dev/null && swept=$((swept + 1))
  fi
done
[ "$swept" -gt 0 ] && echo "leak-check: swept $swept orphaned processes of earlier runs" >&2
find "$runs" -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null

run=$(mktemp -d "$runs/run.XXXXXX")
TMPDIR="$run" "$@"
status=$?

# Give processes that are on their way out a moment.
left=""
for _ in $(seq 1 50); do
  left=$(holding "$run")
  [ -z "$left" ] && break
  sleep 0.2
done
if [ -n "$left" ]; then
  echo "leak-check: these processes started by \`$*\` are still running:" >&2
  for pid in $left; do
    echo "  $pid (parent $(stat_field 2 "$pid")): $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" >&2
  done
  kill -KILL $left 2>/dev/null
  [ "$status" -eq 0 ] && status=1
fi
rm -rf "$run"
exit "$status"
