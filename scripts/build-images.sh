#!/usr/bin/env bash
# Build the pushsync images (images/Dockerfile) with buildah:
#   ${IMAGE_REGISTRY:-ghcr.io/pushsync}/pushsync-receiver:${IMAGE_TAG:-<workspace version>}
#   …/pushsync-worker:…   …/pushsync-server:…   …/pushsync:… (the CLI)
#
# IMAGE_BASE selects the mode:
#   registry  the release build: bases pulled by digest, binaries built by
#             cargo in the pinned Rust image, kubectl and helm downloaded and
#             checked against their pinned SHA-256 sums;
#   local     for machines that cannot pull base images: the bases are made
#             here (debootstrap of Debian bookworm minbase, and a distroless-
#             like base cut from it: no shell), the binaries are built on the
#             host (`cargo build --release --locked`, CARGO_TARGET_DIR
#             honoured), helm is the pinned one of scripts/install-helm.sh and
#             kubectl the machine's. The same Dockerfile stages are built FROM
#             those bases (targets *-local), tagged <tag>-local. Not for
#             release: the bases are not the pinned ones;
#   auto      (default) registry when docker.io answers, else local.
# Other settings: IMAGE_TARGETS (default "receiver worker server"; add cli for
# the optional CLI image), IMAGE_SOURCE,
# SOURCE_DATE_EPOCH (default: the commit time; image and layer timestamps).
# After a local build the images are checked (scripts/build-images.sh verify).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

need_pkg() { # command package
  command -v "$1" >/dev/null && return
  echo "build-images: installing $2" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >/dev/null
}

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
[[ -n "$version" ]] || { echo "build-images: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
registry=${IMAGE_REGISTRY:-ghcr.io/pushsync}
tag=${IMAGE_TAG:-$version}  # local mode appends -local (see mode below)
source_url=${IMAGE_SOURCE:-$(sed -n '/^\[workspace\.package\]/,/^\[/s/^repository = "\(.*\)"$/\1/p' Cargo.toml)}
revision=$(git rev-parse HEAD)
# An image built from uncommitted changes must not claim to be the commit.
[[ -z "$(git status --porcelain --untracked-files=no)" ]] || revision="$revision-dirty"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
targets=${IMAGE_TARGETS:-receiver worker server}  # add cli for the optional CLI image
cache=${PUSHSYNC_IMAGE_CACHE:-$HOME/.cache/pushsync-image}
local_debian=localhost/pushsync-local/debian:bookworm-slim
local_distroless=localhost/pushsync-local/distroless-cc:nonroot

image_name() { # target
  case "$1" in
    receiver) echo "$registry/pushsync-receiver:$tag" ;;
    worker) echo "$registry/pushsync-worker:$tag" ;;
    server) echo "$registry/pushsync-server:$tag" ;;
    cli) echo "$registry/pushsync:$tag" ;;
    *) echo "build-images: unknown target $1" >&2; exit 2 ;;
  esac
}

registry_reachable() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 https://registry-1.docker.io/v2/ 2>/dev/null || true)
  [[ "$code" == 401 || "$code" == 200 ]]
}

# --- local bases -------------------------------------------------------------

# Files of installed packages in a rootfs (no directories, no /usr/share/doc).
package_files() { # rootfs package...
  local rootfs=$1; shift
  local pkg list
  for pkg in "$@"; do
    list="$rootfs/var/lib/dpkg/info/$pkg:amd64.list"
    [[ -f "$list" ]] || list="$rootfs/var/lib/dpkg/info/$pkg.list"
    [[ -f "$list" ]] || { echo "build-images: $pkg is not installed in $rootfs" >&2; exit 1; }
    while IFS= read -r f; do
      [[ "$f" == /usr/share/doc/* || "$f" == /usr/share/man/* || "$f" == /usr/share/lintian/* ]] && continue
      [[ -d "$rootfs$f" && ! -L "$rootfs$f" ]] && continue
      # merged /usr: dpkg lists /lib/… paths that live under /usr/lib/….
      [[ -e "$rootfs$f" || -L "$rootfs$f" ]] && printf '.%s\n' "$f"
    done <"$list"
  done
}

make_local_bases() {
  if buildah inspect --type image "$local_debian" >/dev/null 2>&1 \
     && buildah inspect --type image "$local_distroless" >/dev/null 2>&1; then
    echo "build-images: local bases present ($local_debian, $local_distroless)"
    return
  fi
  need_pkg debootstrap debootstrap
  local rootfs="$cache/rootfs-bookworm" ctr mnt
  mkdir -p "$cache"
  if ! buildah inspect --type image "$local_debian" >/dev/null 2>&1 || [[ ! -d "$rootfs" ]]; then
    $SUDO rm -rf "$rootfs"
    mkdir -p "$cache"
    echo "build-images: debootstrap --variant=minbase bookworm (a stand-in for debian:bookworm-slim)"
    $SUDO debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    # The sources and trimming of the official image: updates and security.
    $SUDO rm -f "$rootfs/etc/apt/sources.list"
    $SUDO tee "$rootfs/etc/apt/sources.list.d/debian.sources" >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    $SUDO cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    $SUDO chroot "$rootfs" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get upgrade -y -qq >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
    $SUDO rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/var/cache/apt/*.bin
    $SUDO truncate -s 0 "$rootfs/etc/resolv.conf"

    ctr=$(buildah from scratch)
    mnt=$(buildah mount "$ctr")
    $SUDO tar -C "$rootfs" -cf - . | $SUDO tar -C "$mnt" -xf -
    buildah umount "$ctr" >/dev/null
    buildah config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --label org.opencontainers.image.description="local stand-in for debian:bookworm-slim (debootstrap minbase)" "$ctr"
    buildah commit --quiet --rm --timestamp "$SOURCE_DATE_EPOCH" "$ctr" "$local_debian" >/dev/null
    echo "build-images: made $local_debian"
  fi

  # The distroless-like base: glibc, libgcc, OpenSSL 3 (as distroless/cc
  # has), CA certificates, tzdata, passwd/group with root, nobody and
  # nonroot (65532); no shell, no coreutils, no package manager.
  $SUDO cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  $SUDO chroot "$rootfs" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends libssl3 ca-certificates tzdata >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
  $SUDO truncate -s 0 "$rootfs/etc/resolv.conf"
  local files="$cache/distroless.files"
  # The merged-/usr links first: dpkg lists libc6's files under /lib.
  printf '%s\n' ./usr ./usr/lib ./usr/lib64 ./usr/bin ./usr/sbin ./lib ./lib64 ./bin ./sbin ./etc ./etc/os-release ./usr/lib/os-release >"$files"
  package_files "$rootfs" libc6 libgcc-s1 libssl3 tzdata >>"$files"
  (cd "$rootfs" && find ./etc/ssl/certs ./usr/share/ca-certificates -print) >>"$files"
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  $SUDO tar -C "$rootfs" --no-recursion -T "$files" -cf - | $SUDO tar -C "$mnt" -xf -
  $SUDO install -d -m 1777 "$mnt/tmp"
  $SUDO install -d -m 0700 "$mnt/root"
  $SUDO install -d -m 0700 -o 65532 -g 65532 "$mnt/home/nonroot"
  $SUDO tee "$mnt/etc/passwd" >/dev/null <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  $SUDO tee "$mnt/etc/group" >/dev/null <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  echo 'hosts: files dns' | $SUDO tee "$mnt/etc/nsswitch.conf" >/dev/null
  buildah umount "$ctr" >/dev/null
  buildah config --user 65532:65532 --workingdir /home/nonroot \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --label org.opencontainers.image.description="local stand-in for gcr.io/distroless/cc-debian12:nonroot" "$ctr"
  buildah commit --quiet --rm --timestamp "$SOURCE_DATE_EPOCH" "$ctr" "$local_distroless" >/dev/null
  echo "build-images: made $local_distroless"
  $SUDO rm -rf "$rootfs"
}

# --- verification of built images --------------------------------------------

verify() {
  local failures=0 out
  check() { # description command...
    local what=$1; shift
    if out=$("$@" 2>&1); then
      printf 'ok    %s: %s\n' "$what" "$(head -n1 <<<"$out" | cut -c1-110)"
    else
      printf 'FAIL  %s\n%s\n' "$what" "$(sed 's/^/  /' <<<"$out" | head -n 10)"; failures=$((failures + 1))
    fi
  }
  # Containers run with podman as deploy/ runs them (read-only root, no
  # capabilities, no privilege gain, uid from the image). Where podman's OCI
  # runtime cannot start containers (sandboxes without cgroup v2 or
  # CAP_SYS_RESOURCE), `buildah run --isolation chroot` runs them instead:
  # same image, user and environment, no read-only root or capability drop.
  local runner=podman
  need_pkg podman podman
  if ! podman run --rm --network none --entrypoint /usr/local/bin/pushsync-receiver "$(image_name receiver)" --version >/dev/null 2>&1 \
     && ! podman run --rm --network none --entrypoint /usr/local/bin/pushsync-worker "$(image_name worker)" --version >/dev/null 2>&1; then
    runner=buildah
    echo "build-images: podman cannot run containers here ($(podman run --rm --network none "$(image_name "${targets%% *}")" --help 2>&1 | tail -n1 | cut -c1-120)); using buildah run --isolation chroot"
  fi
  run_in() { # image entrypoint [-v host:ctr:ro]... -- args...
    local image=$1 entry=$2 vols=(); shift 2
    while [[ "$1" != -- ]]; do vols+=("$1" "$2"); shift 2; done; shift
    if [[ $runner == podman ]]; then
      podman run --rm --read-only --cap-drop ALL --security-opt no-new-privileges --network none --tmpfs /tmp \
        "${vols[@]}" --entrypoint "$entry" "$image" "$@"
    else
      local c rc=0
      c=$(buildah from --quiet --pull-never "$image")
      buildah run --isolation chroot "${vols[@]}" "$c" -- "$entry" "$@" || rc=$?
      buildah rm "$c" >/dev/null
      return $rc
    fi
  }
  local t image l
  for t in $targets; do
    image=$(image_name "$t")
    for l in source revision version; do
      check "$t label org.opencontainers.image.$l" bash -c "v=\$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels \"org.opencontainers.image.$l\"}}' '$image'); [[ -n \"\$v\" && \"\$v\" != unknown ]] && echo \"\$v\""
    done
    check "$t image user" bash -c "u=\$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' '$image'); [[ \"\$u\" == 65532:65532 ]] && echo \"\$u\""
  done
  if [[ " $targets " == *" receiver "* ]]; then
    image=$(image_name receiver)
    check "receiver --help" run_in "$image" /usr/local/bin/pushsync-receiver -- --help
    check "receiver --version" run_in "$image" /usr/local/bin/pushsync-receiver -- --version
    check "receiver: /bin/sh cannot start" bash -c "$(declare -f run_in); runner=$runner; ! run_in '$image' /bin/sh -- -c true >/dev/null 2>&1 && echo 'exec /bin/sh fails'"
    check "receiver: no shell or package manager in the filesystem" bash -c "m=\$(buildah from --quiet --pull-never '$image') && d=\$(buildah mount \"\$m\") && found=\$(ls \"\$d\"/usr/bin/ \"\$d\"/usr/sbin/ \"\$d\"/usr/local/bin/ 2>/dev/null | grep -xE '(ba|da|z|k|c|tc|fi)?sh|busybox|apt|apt-get|dpkg' || true); files=\$(cd \"\$d\" && find . -type f -o -type l | wc -l); buildah rm \"\$m\" >/dev/null; [ -z \"\$found\" ] && echo \"none (\$files files and links in all)\" || { echo \"found: \$found\"; false; }"
    # Serve on an in-memory queue (no broker): the process's uid, /readyz.
    local port=${VERIFY_PORT:-18080} c pid
    if [[ $runner == podman ]]; then
      podman rm -f pushsync-verify-receiver >/dev/null 2>&1 || true
      podman run -d --name pushsync-verify-receiver --read-only --cap-drop ALL --security-opt no-new-privileges --network host \
        -e PUSHSYNC_LISTEN="127.0.0.1:$port" -e PUSHSYNC_GITHUB_SECRET=verify-only "$image" --in-memory-queue >/dev/null
      sleep 2
      check "receiver process user" bash -c "podman top pushsync-verify-receiver huser user | tail -n +2"
      check "receiver serves /readyz" curl -fsS --max-time 5 "http://127.0.0.1:$port/readyz"
      podman rm -f pushsync-verify-receiver >/dev/null 2>&1 || true
    else
      c=$(buildah from --quiet --pull-never "$image")
      buildah config --env PUSHSYNC_LISTEN="127.0.0.1:$port" --env PUSHSYNC_GITHUB_SECRET=verify-only "$c"
      buildah run --isolation chroot "$c" -- /usr/local/bin/pushsync-receiver --in-memory-queue >"$cache/verify-receiver.log" 2>&1 &
      pid=$!
      sleep 3
      check "receiver process user" bash -c "ps -o user=,uid=,args= -C pushsync-receiver | grep -- --in-memory-queue"
      check "receiver serves /readyz" curl -fsS --max-time 5 "http://127.0.0.1:$port/readyz"
      pkill -TERM -P "$pid" >/dev/null 2>&1 || true
      kill -TERM "$pid" >/dev/null 2>&1 || true
      wait "$pid" 2>/dev/null || true
      buildah rm "$c" >/dev/null
    fi
  fi
  if [[ " $targets " == *" worker "* ]]; then
    image=$(image_name worker)
    check "worker --help" run_in "$image" /usr/local/bin/pushsync-worker -- --help
    check "worker --version" run_in "$image" /usr/local/bin/pushsync-worker -- --version
    check "worker id" run_in "$image" id --
    check "worker kubectl version --client" run_in "$image" /usr/local/bin/kubectl -- version --client
    check "worker helm version" run_in "$image" /usr/local/bin/helm -- version
    check "worker env" bash -c "$(declare -f run_in); runner=$runner; run_in '$image' env -- | grep -E '^PUSHSYNC_(KUBECTL|HELM)=' | tr '\n' ' '"
    check "worker libraries resolve (ldd)" bash -c "$(declare -f run_in); runner=$runner; out=\$(run_in '$image' ldd -- /usr/local/bin/pushsync-worker) && ! grep -q 'not found' <<<\"\$out\" && echo \"\$out\" | awk '{print \$1}' | tr '\n' ' '"
    check "worker: no git" bash -c "$(declare -f run_in); runner=$runner; ! run_in '$image' sh -- -c 'command -v git' && echo 'git not on PATH'"
    check "worker: kubectl kustomize deploy/ as 65532" bash -c "$(declare -f run_in); runner=$runner; run_in '$image' /usr/local/bin/kubectl -v '$root/deploy:/src:ro' -- kustomize /src | grep -c '^kind:' | sed 's/\$/ objects/'"
    check "worker: helm template charts/pushsync as 65532" bash -c "$(declare -f run_in); runner=$runner; run_in '$image' /usr/local/bin/helm -v '$root/charts/pushsync:/chart:ro' -- template pushsync /chart --namespace pushsync | grep -c '^kind:' | sed 's/\$/ objects/'"
  fi
  if [[ " $targets " == *" server "* ]]; then
    # Serving needs a Kubernetes API (it lists Applications before it is
    # ready); the image's contents and user are checked here, the server
    # itself by server/tests and tests/e2e.
    image=$(image_name server)
    check "server --help" run_in "$image" /usr/local/bin/pushsync-server -- --help
    check "server --version" run_in "$image" /usr/local/bin/pushsync-server -- --version
    check "server: /bin/sh cannot start" bash -c "$(declare -f run_in); runner=$runner; ! run_in '$image' /bin/sh -- -c true >/dev/null 2>&1 && echo 'exec /bin/sh fails'"
    check "server: no shell or package manager in the filesystem" bash -c "m=\$(buildah from --quiet --pull-never '$image') && d=\$(buildah mount \"\$m\") && found=\$(ls \"\$d\"/usr/bin/ \"\$d\"/usr/sbin/ \"\$d\"/usr/local/bin/ 2>/dev/null | grep -xE '(ba|da|z|k|c|tc|fi)?sh|busybox|apt|apt-get|dpkg' || true); files=\$(cd \"\$d\" && find . -type f -o -type l | wc -l); buildah rm \"\$m\" >/dev/null; [ -z \"\$found\" ] && echo \"none (\$files files and links in all)\" || { echo \"found: \$found\"; false; }"
  fi
  if [[ " $targets " == *" cli "* ]]; then
    check "cli --help" run_in "$(image_name cli)" /usr/local/bin/pushsync -- --help
  fi
  ((failures == 0)) || { echo "build-images: $failures check(s) failed" >&2; return 1; }
  echo "build-images: all checks passed"
}

# --- build ---------------------------------------------------------------------

build() {
  local mode=$1; shift
  local t args=(
    --layers --timestamp "$SOURCE_DATE_EPOCH"
    -f images/Dockerfile
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "SOURCE=$source_url"
  )
  if [[ "$mode" == local ]]; then
    args+=(
      --build-arg "RUNTIME_IMAGE=$local_distroless" --build-arg "WORKER_BASE=$local_debian"
      --build-arg "KUBECTL_SHA256=$(sha256sum images/dist/tools/kubectl | cut -d' ' -f1)"
      --build-arg "KUBECTL_VERSION=$kubectl_version"
      --pull-never
    )
    # RUN steps without an OCI runtime (sandboxes where crun cannot create
    # containers); network is the host's, as the worker stage's apt needs.
    [[ "${BUILDAH_ISOLATION:-}" ]] || args+=(--isolation chroot)
  fi
  local suffix=
  [[ "$mode" == local ]] && suffix=-local
  for t in $targets; do
    echo "build-images: $(image_name "$t") ($mode)"
    buildah bud "${args[@]}" --target "$t$suffix" -t "$(image_name "$t")" . >"$cache/build-$t.log" 2>&1 \
      || { tail -n 30 "$cache/build-$t.log" >&2; echo "build-images: $t failed (log: $cache/build-$t.log)" >&2; exit 1; }
    echo "build-images: built $(image_name "$t") $(buildah inspect --type image --format '{{.FromImageDigest}}' "$(image_name "$t")")"
  done
}

prepare_local() {
  local target_dir=${CARGO_TARGET_DIR:-$root/target}
  echo "build-images: cargo build --release --locked (CARGO_TARGET_DIR=$target_dir)"
  local packages=(-p pushsync-receiver -p pushsync-worker) bins=(pushsync-receiver pushsync-worker)
  [[ " $targets " == *" server "* ]] && packages+=(-p pushsync-server) && bins+=(pushsync-server)
  [[ " $targets " == *" cli "* ]] && packages+=(-p pushsync-cli) && bins+=(pushsync)
  CARGO_TARGET_DIR="$target_dir" cargo build --release --locked "${packages[@]}"
  rm -rf images/dist
  mkdir -p images/dist/bin images/dist/tools
  echo '*' >images/dist/.gitignore  # generated; never committed
  for b in "${bins[@]}"; do cp "$target_dir/release/$b" images/dist/bin/; done
  # helm: the pinned binary (scripts/install-helm.sh checks its sha256; the
  # Dockerfile checks it again against HELM_SHA256).
  PUSHSYNC_TOOLS=${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools} scripts/install-helm.sh
  cp "${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools}/bin/helm" images/dist/tools/helm
  # kubectl: the machine's (what `kubectl kustomize` in the tests is). Its
  # checksum is taken here, so in local mode it proves only that the image
  # holds the file copied.
  local kubectl
  kubectl=$(readlink -f "${LOCAL_KUBECTL:-$(command -v kubectl)}")
  cp "$kubectl" images/dist/tools/kubectl
  kubectl_version=$("$kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p')
  echo "build-images: kubectl $kubectl_version from $kubectl"
}

main() {
  need_pkg buildah buildah
  mkdir -p "$cache"
  case "${1:-}" in
    verify) [[ "${IMAGE_BASE:-}" == local ]] && tag="$tag-local"; verify; return ;;  # check images built before
    bases) make_local_bases; return ;;  # only the local bases
  esac
  local mode=${IMAGE_BASE:-auto}
  if [[ "$mode" == auto ]]; then
    if registry_reachable; then mode=registry; else mode=local; echo "build-images: docker.io unreachable: local mode (not for release)"; fi
  fi
  # Local images are not the release images: their tag says so.
  [[ "$mode" == local ]] && tag="$tag-local"
  case "$mode" in
    registry) build registry ;;
    local) prepare_local; make_local_bases; build local; verify ;;
    *) echo "build-images: IMAGE_BASE=$mode: expected auto, registry or local" >&2; exit 2 ;;
  esac
}

main "$@"
