#!/usr/bin/env bash
# Installs what `multifd bench seeds` measures beside us and what checks its report, from
# Debian (no other download): QEMU 7.2 (`qemu-system-x86`, Debian 12) for the side-by-side
# rows, and Chromium for the report's browser test. Run as root: `npm run setup:qemu`.
# Without QEMU the seeds suite runs ours alone and says so; without Chromium the report test
# skips with a printed reason.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends qemu-system-x86 chromium >/dev/null
qemu-system-x86_64 --version | head -1
/usr/bin/chromium --version
