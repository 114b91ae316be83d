#!/usr/bin/env bash
# Builds the Linux test guest that test/integration/qemu-guest-migration.test.ts migrates
# between two QEMU 7.2 processes, into test/.cache/guest/ (git-ignored):
#   vmlinuz            Debian 12's current kernel, from the package linux-image-amd64 depends
#                      on (apt-get download + dpkg -x into a scratch folder: never installed);
#   initramfs.cpio.gz  busybox-static with its applet links, /init (test/guest/init) and
#                      /bin/dirtier (test/guest/dirtier.c, gcc -static);
#   stamp              what they were built from: the kernel package and version, and hashes of
#                      busybox, the guest's sources and this script.
# Run as root (it installs the Debian packages it lacks: busybox-static cpio gzip gcc
# libc6-dev): `bash scripts/build-test-guest.sh`. Idempotent: when both outputs exist and the
# stamp matches, it only says so; a stale kernel package list (a 404 on download) is refreshed
# once with apt-get update.
#
# Measured here (2 shared cores): 17 s on a machine without busybox-static and cpio (apt-get
# update and install included), 15 s with them (the kernel package, 70 MB, downloaded and its
# 400 MB unpacked into a scratch folder that is removed), 4-6 s to rebuild the initramfs alone
# after a change to test/guest/, 2-4 s to find everything up to date (apt-cache's look-ups).
# The same inputs give the same initramfs byte for byte.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/test/.cache/guest
started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
say() { echo "build-test-guest: $*"; }

deps=(busybox-static cpio gzip gcc libc6-dev)
missing=()
for package in "${deps[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
# The kernel package's name as linux-image-amd64 names it today, or nothing without a package list.
kernel_package() {
  apt-cache depends --no-recommends --no-suggests linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}
updated=no
kernel=$(kernel_package)
if [ ${#missing[@]} -gt 0 ] || [ -z "$kernel" ]; then
  if [ "$(id -u)" != 0 ]; then
    say "run as root: it needs apt-get update${missing:+ and apt-get install ${missing[*]}}" >&2
    exit 1
  fi
  apt_get update -qq
  updated=yes
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  kernel=$(kernel_package)
fi

hash() { sha256sum "$@" | cut -c1-16; }
# resolve_kernel: sets kernel_version and stamp for the kernel package $kernel.
resolve_kernel() {
  [ -n "$kernel" ] || { say "no package list names linux-image-amd64's kernel package" >&2; exit 1; }
  kernel_version=$(apt-cache policy "$kernel" | awk '$1 == "Candidate:" { print $2 }')
  stamp="kernel=$kernel=$kernel_version
busybox=$(hash /bin/busybox)
init=$(hash "$root/test/guest/init")
dirtier=$(hash "$root/test/guest/dirtier.c")
recipe=$(hash "$0")"
}
resolve_kernel
if [ -e "$out/vmlinuz" ] && [ -e "$out/initramfs.cpio.gz" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
  say "up to date ($kernel $kernel_version) in $out"
  exit 0
fi
old_kernel=$(head -1 "$out/stamp" 2>/dev/null || true)
rm -f "$out/stamp"
mkdir -p "$out"
scratch=$(mktemp -d "$out/scratch.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# The kernel, when its package changed (or was never fetched).
if [ ! -e "$out/vmlinuz" ] || [ "$old_kernel" != "kernel=$kernel=$kernel_version" ]; then
  say "downloading $kernel $kernel_version"
  download() { (cd "$scratch" && apt_get download -qq -o APT::Sandbox::User=root "$kernel=$kernel_version"); }
  if ! download; then
    # A package list older than the archive names a .deb that is gone: refresh it once.
    [ "$updated" = yes ] && { say "apt-get download $kernel=$kernel_version failed after apt-get update" >&2; exit 1; }
    apt_get update -qq
    kernel=$(kernel_package)
    resolve_kernel
    download
  fi
  dpkg -x "$scratch"/"$kernel"_*.deb "$scratch/kernel"
  vmlinuz=("$scratch"/kernel/boot/vmlinuz-*)
  [ -f "${vmlinuz[0]}" ] || { say "$kernel has no boot/vmlinuz-*" >&2; exit 1; }
  cp "${vmlinuz[0]}" "$out/vmlinuz.tmp"
  mv "$out/vmlinuz.tmp" "$out/vmlinuz"
  rm -rf "$scratch/kernel" "$scratch"/*.deb
  say "kernel $(basename "${vmlinuz[0]}") from $kernel $kernel_version"
fi

# The initramfs: busybox and a link per applet, /init, the dirtier, all owned by root.
staging=$scratch/initramfs
mkdir -p "$staging"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp}
cp /bin/busybox "$staging/bin/busybox"
/bin/busybox --list-full | while read -r applet; do
  [ -e "$staging/$applet" ] || ln -s /bin/busybox "$staging/$applet"
done
install -m 0755 "$root/test/guest/init" "$staging/init"
gcc -static -O2 -Wall -Wextra -Werror -o "$staging/bin/dirtier" "$root/test/guest/dirtier.c"
# One mtime for every file, so that the same inputs give the same archive byte for byte.
find "$staging" -mindepth 1 -exec touch -h -d @0 {} +
(cd "$staging" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) | gzip -9n >"$out/initramfs.cpio.gz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"

echo "$stamp" >"$out/stamp"
say "built in $((SECONDS - started)) s:"
say "  kernel    $out/vmlinuz ($kernel $kernel_version)"
say "  initramfs $out/initramfs.cpio.gz ($(stat -c %s "$out/initramfs.cpio.gz") bytes)"
