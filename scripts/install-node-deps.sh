#!/usr/bin/env bash
# Installs the npm packages pinned in <dir>/package-lock.json into <dir>/node_modules, once per
# lockfile version: `npm ci` runs only when node_modules is missing or older than the lockfile.
# Usage: install-node-deps.sh DIR [--platform-binaries]
set -euo pipefail
dir=$1
[ -f "$dir/package-lock.json" ] || exit 0
stamp=$dir/node_modules/.package-lock.json
if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
  exit 0
fi
# Debian's nodejs comes without npm (NodeSource's bundles it): add Debian's npm only if missing.
command -v npm >/dev/null || "$(dirname "$0")/install-deps.sh" npm
echo "installing npm packages pinned in $dir/package-lock.json"
if [ "${2:-}" = --platform-binaries ]; then
  # Packages that ship one binary per platform as optional dependencies (OpenCode): npm writes
  # only this platform's into the lockfile, and `npm ci` then refuses it as out of sync. An
  # install that may not save installs exactly the lockfile's versions and integrity all the same.
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error
else
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
fi
