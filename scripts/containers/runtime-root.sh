#!/usr/bin/env bash
# Assembles a distroless root file system for a Node.js program: the node binary,
# the shared libraries it and the given native files link against (found with
# ldd, so it follows the build's architecture), CA certificates, a passwd entry
# for uid 1000, a sticky /tmp, and the Debian package records of every copied
# library (var/lib/dpkg/status.d, the layout distroless images use) so that
# image scanners still see glibc, libstdc++ and the rest. No shell, no package
# manager, no coreutils: the image is node, its libraries and the program.
#
#   bash scripts/containers/runtime-root.sh DEST [FILE_OR_DIR ...]
#
# FILE_OR_DIR: more ELF files, or directories searched for *.node and *.so*
# (a program's node_modules). Libraries found inside those directories travel
# with them and are not copied again; a library ldd cannot find is an error,
# not a crash at the first request. Run by Dockerfile.server and
# Dockerfile.operator in a Debian-based build stage (node:20-bookworm-slim).
set -euo pipefail

dest="${1:?usage: runtime-root.sh DEST [FILE_OR_DIR ...]}"
shift
die() { echo "runtime-root.sh: $*" >&2; exit 1; }

node="$(readlink -f "$(command -v node)")"
mkdir -p "$dest"/{etc/ssl/certs,home/node,tmp,usr/bin,usr/lib,usr/local/bin,var/lib/dpkg/status.d}
# Debian 12 merged /usr: the loader and libraries are named by /lib and /lib64 paths.
ln -sfn usr/lib "$dest/lib"
ln -sfn usr/bin "$dest/bin"
if [[ -e /lib64 ]]; then mkdir -p "$dest/usr/lib64" && ln -sfn usr/lib64 "$dest/lib64"; fi
chmod 1777 "$dest/tmp"
install -m 755 "$node" "$dest/usr/local/bin/node"

# libs: what is copied into the root, keyed by path. A named file is copied itself
# (e.g. a preloaded allocator); a directory's native files travel with it.
declare -A libs=()
elfs=("$node")
skip=()
for arg in "$@"; do
  if [[ -d "$arg" ]]; then
    skip+=("$(readlink -f "$arg")/")
    while IFS= read -r -d '' f; do elfs+=("$f"); done < <(find "$arg" -type f \( -name '*.node' -o -name '*.so' -o -name '*.so.*' \) -print0)
  elif [[ -f "$arg" ]]; then
    elfs+=("$(readlink -f "$arg")")
    libs["$(readlink -f "$arg")"]=1
  else
    die "no such file or directory: $arg"
  fi
done

for elf in "${elfs[@]}"; do
  out="$(ldd "$elf" 2>&1)" || die "ldd $elf failed: $out"
  if grep -q 'not found' <<<"$out"; then die "$elf needs a library this build stage lacks:
$(grep 'not found' <<<"$out")"; fi
  # "libx.so => /path (0x…)" and the loader's own "/lib64/ld-linux-….so.2 (0x…)".
  while IFS= read -r lib; do
    [[ -n "$lib" ]] || continue
    real="$(readlink -f "$lib")"
    for s in "${skip[@]}"; do [[ "$real" == "$s"* ]] && continue 2; done
    libs["$lib"]=1
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out")
done

packages=()
for lib in "${!libs[@]}"; do
  # -L: the soname path gets the library itself, not a dangling link to a versioned name.
  cp -L --parents "$lib" "$dest/"
  # dpkg records the path its package shipped, before or after the /usr merge.
  real="$(readlink -f "$lib")"
  for path in "$lib" "$real" "${real#/usr}"; do
    if pkg="$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)" && [[ -n "$pkg" ]]; then
      packages+=("$pkg")
      break
    fi
  done
done

cp -L /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/ca-certificates.crt"
packages+=(ca-certificates)
[[ ! -f /etc/os-release ]] || cp -L /etc/os-release "$dest/etc/os-release"
for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do
  dpkg-query --status "$pkg" >"$dest/var/lib/dpkg/status.d/$pkg" 2>/dev/null || rm -f "$dest/var/lib/dpkg/status.d/$pkg"
done

printf 'root:x:0:0:root:/root:/sbin/nologin\nnode:x:1000:1000:node:/home/node:/sbin/nologin\n' >"$dest/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' >"$dest/etc/group"
printf 'hosts: files dns\n' >"$dest/etc/nsswitch.conf"
chown 1000:1000 "$dest/home/node"

# The root must run node before it becomes an image.
chroot "$dest" /usr/local/bin/node -e 'require("node:https"); require("node:crypto").randomUUID()' ||
  die "node does not run inside the assembled root"
echo "runtime-root.sh: ${#libs[@]} libraries, $(du -sh "$dest" | cut -f1) in $dest" >&2
