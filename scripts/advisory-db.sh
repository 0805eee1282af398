#!/usr/bin/env bash
# Put the vendored RustSec advisory-db snapshot (third_party/advisory-db/)
# where cargo-deny looks for it offline, and say which snapshot it is.
#
# cargo-deny --offline reads the database from
# <db-path>/advisory-db-3157b0e258782691 (a name it derives from the default
# URL, https://github.com/rustsec/advisory-db); deny.toml sets db-path to
# $PUSHSYNC_TOOLS/advisory-dbs. It judges staleness by the mtime of
# .git/FETCH_HEAD there, so that file is dated to the snapshot's commit:
# the age it checks against maximum-db-staleness is the real one.
# The tarball is pinned by sha256; to refresh it see
# third_party/advisory-db/README.md and change the four values below.
set -euo pipefail
cd "$(dirname "$0")/.."
tarball="third_party/advisory-db/advisory-db-bf5c0d24.tar.gz"
tarball_sha256="1ff1c802e8b229e216521b16aacfcf19d0b693c82c1f52f9a7968cbf9fb49ef1"
commit="bf5c0d245a92671908518d7e765914d437954ed6"
commit_date="2026-08-21T08:28:40+02:00"

root="${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools}/advisory-dbs"
db="$root/advisory-db-3157b0e258782691"
mkdir -p "$root"
exec 9>"$root/.extract.lock"
flock 9
echo "$tarball_sha256  $tarball" | sha256sum --check --quiet -
if [[ "$(cat "$db/.pushsync-snapshot" 2>/dev/null)" != "$tarball_sha256" ]]; then
  new=$(mktemp -d "$root/.new.XXXXXX")
  chmod 0755 "$new"
  trap 'rm -rf "$new"' EXIT
  tar -xzf "$tarball" -C "$new"
  mkdir "$new/.git"
  printf '%s\t\tbranch '"'"'main'"'"' of https://github.com/rustsec/advisory-db\n' "$commit" >"$new/.git/FETCH_HEAD"
  echo "$tarball_sha256" >"$new/.pushsync-snapshot"
  rm -rf "$db"
  mv "$new" "$db"
fi
touch -d "$commit_date" "$db/.git/FETCH_HEAD"
age=$(( ($(date +%s) - $(date -d "$commit_date" +%s)) / 86400 ))
echo "advisory-db snapshot ${commit:0:12} of ${commit_date%%T*} ($age days old; advisories published since are not checked)"
