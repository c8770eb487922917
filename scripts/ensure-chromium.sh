#!/usr/bin/env bash
# The dashboard's browser tests (tests/test_dashboard_browser.py) drive Debian's Chromium with
# Playwright for Python, never a browser Playwright downloads itself (`playwright install` is not
# used). On Debian/Ubuntu as root this installs the `chromium` package when /usr/bin/chromium is
# missing (CHROMIUM_PATH names another binary); elsewhere it says what to do, and those tests skip.
set -uo pipefail

browser="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$browser" ] && exit 0

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing Chromium for the dashboard's browser tests (Debian package chromium)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }
fi
[ -x "$browser" ] && exit 0
echo "WARNING: no Chromium at $browser: the dashboard's browser tests will be skipped." >&2
echo "  Install it (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM_PATH." >&2
exit 0
