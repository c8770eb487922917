#!/usr/bin/env bash
# The dashboard's front-end libraries, from the npm registry at the exact versions package-lock.json
# records, copied (built files and licences only) into app/dashboard/static/vendor, which is
# committed: a fresh clone, `make run` and production serve them from the app, never from a CDN
# (factory networks and China block CDNs), and need no Node.js. Run this only to change a version:
#   edit package.json → npm install --ignore-scripts → bash scripts/vendor-frontend.sh → commit.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "npm is needed to vendor the front-end libraries" >&2; exit 1; }
npm ci --ignore-scripts --no-audit --no-fund >/dev/null
out=app/dashboard/static/vendor
rm -rf "$out" && mkdir -p "$out/frappe-gantt"
pkg=node_modules/frappe-gantt
cp "$pkg/dist/frappe-gantt.umd.js" "$pkg/dist/frappe-gantt.css" "$pkg/license.txt" "$out/frappe-gantt/"
version=$(node -p "require('./$pkg/package.json').version")
printf 'frappe-gantt %s (MIT, license.txt) — copied by scripts/vendor-frontend.sh from package-lock.json\n' "$version" \
  > "$out/VERSIONS.txt"
echo "vendored into $out:"; cat "$out/VERSIONS.txt"
