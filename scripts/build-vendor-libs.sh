#!/usr/bin/env bash
# Builds the real accelerator libraries from the pinned upstream archives in ../shared/vendor
# (QPL 1.6.0, qatlib 26.08.0 + QATzip 1.3.1, UADK 2.10) into native/vendor-build/, a git-ignored
# prefix: lib/libqpl.so.1, lib/libqatzip.so.3, lib/libwd_comp.so.2, include/, ... The tests in
# test/integration/vendor-libraries.test.ts drive the shim through them (software paths only:
# no machine here has a device). Run as root (it installs the Debian build dependencies it
# lacks), never at install time: `npm run build:vendor-libs`.
#
# Idempotent: a library already built from the same archive (sha256), by the same recipe, into
# the same prefix is skipped. Each build prints how long it took. MULTIFD_VENDOR_DIR names
# another archive folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
vendor=$(cd "${MULTIFD_VENDOR_DIR:-$root/../shared/vendor}" && pwd)
prefix=$root/native/vendor-build
jobs=$(nproc)

deps=(nasm autoconf automake autoconf-archive libtool pkg-config make cmake gcc g++ zstd
  libssl-dev zlib1g-dev libnuma-dev liblz4-dev)
missing=()
for package in "${deps[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-vendor-libs: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "build-vendor-libs: run as root, or: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

(cd "$vendor" && sha256sum --check --quiet SHA256SUMS)
mkdir -p "$prefix/src" "$prefix/stamps"

hash_of() { grep " $1\$" "$vendor/SHA256SUMS" | cut -d' ' -f1; }

# unpack ARCHIVE: a fresh copy of the archive's folder under src/, echoed.
unpack() {
  local name=${1%.tar.zst}
  rm -rf "${prefix:?}/src/$name"
  zstd -dc "$vendor/$1" | tar -x -C "$prefix/src"
  echo "$prefix/src/$name"
}

# build NAME STAMP PRODUCT FUNCTION: runs FUNCTION unless the stamp (archive hashes, prefix and
# the function's own text) matches the last build's and PRODUCT exists; prints the time taken.
# The output of a build goes to stamps/NAME.log, printed only when the build fails.
build() {
  local name=$1 product=$prefix/lib/$3 run=$4
  local stamp="$2 prefix=$prefix recipe=$(declare -f "$run" | sha256sum | cut -c1-16)"
  if [ -e "$product" ] && [ "$(cat "$prefix/stamps/$name" 2>/dev/null)" = "$stamp" ]; then
    echo "build-vendor-libs: $name up to date ($3)"
    return
  fi
  rm -f "$prefix/stamps/$name"
  local started=$SECONDS log=$prefix/stamps/$name.log
  echo "build-vendor-libs: building $name with $jobs jobs"
  # A subshell of its own: `set -e` holds inside it (it would not under `if` or `||`).
  set +e
  (set -e; "$run") >"$log" 2>&1
  local status=$?
  set -e
  if [ $status != 0 ]; then
    tail -n 40 "$log" >&2
    echo "build-vendor-libs: $name failed (whole log: $log)" >&2
    exit 1
  fi
  [ -e "$product" ] || { echo "build-vendor-libs: $name built no $product" >&2; exit 1; }
  echo "$stamp" >"$prefix/stamps/$name"
  echo "build-vendor-libs: $name built in $((SECONDS - started)) s ($3)"
}

# QPL: CMake, shared, tests and examples off (their submodules are not in the archive).
build_qpl() {
  local src
  src=$(unpack qpl-1.6.0.tar.zst)
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DQPL_LIBRARY_TYPE=SHARED -DQPL_BUILD_TESTS=OFF \
    -DQPL_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib
  cmake --build "$src/build" -j "$jobs"
  cmake --install "$src/build"
}

# qatlib: QATzip's dependency (libqat, libusdm); autoconf-archive provides its AX_PTHREAD.
# Shared only: libtool would compile every file twice for static libraries too.
build_qatlib() {
  local src
  src=$(unpack qatlib-26.08.0.tar.zst)
  cd "$src"
  ./autogen.sh
  ./configure --prefix="$prefix" --enable-systemd=no --disable-samples --disable-static
  make -j "$jobs"
  make install
}

# QATzip has no pkg-config support: it looks for <qat/cpa.h>, -lqat and -lusdm on the flags.
# Only the library (src/) and its header: not the qzip tool (utils/) nor the test programs.
build_qatzip() {
  local src
  src=$(unpack QATzip-1.3.1.tar.zst)
  cd "$src"
  ./autogen.sh
  ./configure --prefix="$prefix" --disable-static CPPFLAGS="-I$prefix/include" LDFLAGS="-L$prefix/lib -Wl,-rpath,$prefix/lib"
  make -C src -j "$jobs"
  make -C src install
  make install-pkgincludeHEADERS
}

# UADK: plain configure (conf.sh targets aarch64); the rpath lets libwd find its drivers in lib/uadk/.
# Only the top folder's libraries, drivers and headers (all-am): not its tests, tool and sample.
build_uadk() {
  local src
  src=$(unpack uadk-2.10.tar.zst)
  cd "$src"
  ./autogen.sh
  ./configure --prefix="$prefix" --disable-static --enable-shared LDFLAGS="-Wl,-rpath,$prefix/lib"
  make -j "$jobs" all-am
  make install-am
}

total=$SECONDS
build qpl "qpl=$(hash_of qpl-1.6.0.tar.zst)" libqpl.so.1 build_qpl
build qatlib "qatlib=$(hash_of qatlib-26.08.0.tar.zst)" libqat.so.4 build_qatlib
# QATzip is rebuilt whenever qatlib is: its stamp holds qatlib's.
build qatzip "qatzip=$(hash_of QATzip-1.3.1.tar.zst) [$(cat "$prefix/stamps/qatlib")]" libqatzip.so.3 build_qatzip
build uadk "uadk=$(hash_of uadk-2.10.tar.zst)" libwd_comp.so.2 build_uadk

# Our prototypes of the vendor ABIs (native/vendor-abi.h) against the headers just installed.
abi=$(mktemp -d)
trap 'rm -rf "$abi"' EXIT
gcc -std=c11 -Wall -Werror -c -o "$abi/ours.o" "$root/native/vendor-abi-check.c"
gcc -std=gnu11 -Wall -Werror -DVENDOR_HEADERS -I"$prefix/include" -o "$abi/check" "$root/native/vendor-abi-check.c" "$abi/ours.o"
"$abi/check"
echo "build-vendor-libs: done in $((SECONDS - total)) s; the libraries are in $prefix/lib"
