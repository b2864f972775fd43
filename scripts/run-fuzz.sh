#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan + UBSan) in build-fuzz/ and runs each one in turn
# for SECONDS (first argument, else $FUZZ_SECONDS, else 30). Fails when any target finds a crash,
# a failed invariant, a leak or a timeout; its reproducer is kept under build-fuzz/artifacts/.
#
#   scripts/run-fuzz.sh [SECONDS]        `make fuzz FUZZ_SECONDS=N` runs this
#   FUZZ_TARGETS="fuzz_sse fuzz_query"   only these targets
#   FUZZ_BUILD_DIR=build-fuzz JOBS=2     build dir and parallel compile jobs
#
# The committed seeds (fuzz/corpus/<target>/) are only read: what a run finds goes to a temporary
# corpus that is deleted afterwards. Reproduce a finding with build-fuzz/fuzz/<target> <file>.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache, when present, shares its cache between clones at different paths (see the Makefile).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}

seconds=${1:-${FUZZ_SECONDS:-30}}
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${JOBS:-2}
targets=${FUZZ_TARGETS:-fuzz_request fuzz_json_body fuzz_query fuzz_sse fuzz_feed_message}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "run-fuzz: seconds must be a positive integer, not '$seconds'" >&2
  exit 2
fi

scripts/install-deps.sh clang-14 libclang-rt-14-dev cmake ninja-build
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DTAU_FUZZ=ON -DTAU_WERROR=ON -DTAU_TCMALLOC=OFF \
  -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build_dir" --target fuzz_targets -j "$jobs"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
for target in $targets; do
  binary="$build_dir/fuzz/$target"
  seeds="fuzz/corpus/$target"
  artifacts="$build_dir/artifacts/$target"
  log="$build_dir/logs/$target.log"
  mkdir -p "$work/$target" "$artifacts" "$(dirname "$log")"
  options=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1
    -artifact_prefix="$artifacts/")
  [ -f "fuzz/$target.dict" ] && options+=(-dict="fuzz/$target.dict")
  echo "run-fuzz: $target for ${seconds}s"
  # New inputs go to the first directory (temporary); the seeds are read from the second.
  if "$binary" "${options[@]}" "$work/$target" "$seeds" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    coverage=$(grep -a -o 'DONE *cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 | sed 's/DONE *//')
    echo "run-fuzz: $target ok: $runs runs, $speed/s, $coverage"
  else
    failed+=("$target")
    echo "run-fuzz: $target FAILED; its log ($log) ends:" >&2
    grep -a -v '^#[0-9]\|# Uses:' "$log" | tail -n 40 >&2
    echo "run-fuzz: reproducer(s) in $artifacts/; rerun one with $binary <file>" >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run-fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
