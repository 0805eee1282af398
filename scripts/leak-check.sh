#!/usr/bin/env bash
# Run a command (make test, bench, soak) with a temporary directory of its own
# and fail when anything it started is still running once it returns.
#
# Every process the command starts inherits TMPDIR=<its run directory> (the
# worker passes it on to the renderers it runs with a cleared environment),
# so leftovers are found precisely by that environment entry, never by a
# name. A test binary that was SIGKILLed could not clean up after itself;
# what an ended earlier run left is swept before the command starts.
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

# A run directory records the pid of the script that owns it. Runs whose
# owner is gone (an interrupted or SIGKILLed earlier run) are swept: every
# process still holding their TMPDIR is killed, whatever its parent, and the
# directory removed. Runs whose owner lives (a concurrent run) are left alone.
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
swept=0
for dir in "$runs"/run.*; do
  [ -d "$dir" ] || continue
  owner=$(cat "$dir/.owner" 2>/dev/null)
  alive "$owner" && continue
  for pid in $(holding "$dir"); do
    kill -KILL "$pid" 2>/dev/null && swept=$((swept + 1))
  done
  rm -rf "$dir"
done
[ "$swept" -gt 0 ] && echo "leak-check: swept $swept processes left by earlier, ended runs" >&2

run=$(mktemp -d "$runs/run.XXXXXX")
echo $$ > "$run/.owner"
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
  # Killed only if still ours (a pid may have been reused meanwhile).
  for pid in $(holding "$run"); do
    kill -KILL "$pid" 2>/dev/null
  done
  [ "$status" -eq 0 ] && status=1
fi
rm -rf "$run"
exit "$status"
