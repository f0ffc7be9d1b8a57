#!/usr/bin/env bash
# System packages the test suite needs that pip cannot install: Debian's chromium and
# chromium-driver (the MissionControl browser tests drive them with Selenium). Installs them
# only when missing and only as root; otherwise says what to install.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing chromium and chromium-driver (Debian packages) for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q chromium chromium-driver >/dev/null
else
  echo "note: the browser tests need /usr/bin/chromium and /usr/bin/chromedriver;" \
       "install them with: apt-get install chromium chromium-driver" >&2
fi
