#!/usr/bin/env bash
# The lint gate (`make lint`, first in .ci/run): clang-tidy (.clang-tidy; every warning fails)
# over every tracked .cpp under src/, JOBS (default: all cores) at a time, with the flags in
# BUILD_DIR/compile_commands.json (`make configure` writes it). The headers under src/ are
# checked through the files that include them. Formatting is `make format-check`.
#
#   scripts/lint.sh [BUILD_DIR]          BUILD_DIR defaults to build
#   LINT_FILES="src/http/sse.cpp"        only these files
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${1:-build}
jobs=${JOBS:-$(nproc)}
clang_tidy=${CLANG_TIDY:-clang-tidy}
if [ ! -f "$build_dir/compile_commands.json" ]; then
  echo "lint: no $build_dir/compile_commands.json; run \`make configure\` first" >&2
  exit 2
fi
if [ -n "${LINT_FILES:-}" ]; then
  read -r -a files <<<"$LINT_FILES"
else
  mapfile -t files < <(git ls-files 'src/*.cpp')
fi

echo "lint: $("$clang_tidy" --version | grep -o 'version [0-9.]*') over ${#files[@]} files," \
  "$jobs at a time"
start=$(date +%s)
# Each file's findings are printed together, after it is done; any finding fails the file.
status=0
# The flags are g++'s: clang does not know some of its -Wno-* options (-Wno-restrict).
printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "$jobs" sh -c '
  if ! out=$("$0" -p "$1" --quiet --extra-arg=-Wno-unknown-warning-option "$2" 2>&1); then
    printf "%s\n" "$out" | grep -v "^[0-9]* warnings\( and [0-9]* errors\?\)\? generated\.$"
    exit 1
  fi' "$clang_tidy" "$build_dir" || status=$?
elapsed=$(($(date +%s) - start))
if [ "$status" -ne 0 ]; then
  echo "lint: clang-tidy found problems (above) in ${elapsed}s" >&2
  exit 1
fi
echo "lint: clang-tidy clean in ${elapsed}s"
