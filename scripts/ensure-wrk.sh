#!/usr/bin/env bash
# The benchmarks (bench/ceiling.py) load the server with wrk. On Debian/Ubuntu as root this
# installs Debian's wrk package; elsewhere it says what to do. Never fails the setup.
set -uo pipefail

command -v wrk >/dev/null && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing the load generator for the benchmarks (wrk)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1; }
fi
command -v wrk >/dev/null && exit 0
echo "WARNING: wrk is not installed: bench/ceiling.py cannot run." >&2
echo "  Install it (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk)." >&2
exit 0
