#!/usr/bin/env bash
# The append path measured with wrk (Debian's `wrk`, a lean C load generator) instead of
# bench/append_load: 64 keep-alive connections posting progress to one session, for each store.
# wrk takes far less CPU per request than append_load, so on this 2-core machine it leaves the
# gateway more of the second core; both views are reported. Usage: run-append-wrk.sh BUILD_DIR
# Environment: STORES [memory sqlite-normal sqlite-full]  CLIENTS [64]  DURATION_S [8]
#   BENCH_REPEATS [3]  MESSAGE_BYTES [100]  WRITE_DOCS [1]  BENCH_OUT [docs/benchmarks.md]
#   GATEWAY_FLAGS (added to the gateway's command line, e.g. "--log-level warn")
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$root/build}
gateway_bin=$build_dir/tau-gateway
stores=${STORES:-memory sqlite-normal sqlite-full}
clients=${CLIENTS:-64}
duration_s=${DURATION_S:-8}
repeats=${BENCH_REPEATS:-3}
export MESSAGE_BYTES=${MESSAGE_BYTES:-100}
write_docs=${WRITE_DOCS:-1}
out_doc=${BENCH_OUT:-$root/docs/benchmarks.md}
heading="## Append path with wrk (make bench-append)"
work=$(mktemp -d -p "$build_dir" bench-append-wrk.XXXXXX)
gateway_pid=
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

store_flags() {
  case $1 in
    memory) echo "--store memory" ;;
    sqlite-normal) echo "--store sqlite --durability normal" ;;
    sqlite-full) echo "--store sqlite --durability full" ;;
    *) echo "unknown store $1" >&2; exit 2 ;;
  esac
}

results=$work/results.txt
for repeat in $(seq "$repeats"); do
  for store in $stores; do
    state=$work/state-$store-$repeat
    mkdir -p "$state"
    # shellcheck disable=SC2046
    "$gateway_bin" --auth-mode localhost-dev --bind 127.0.0.1:0 --threads 1 \
      --rate-limit-max-requests 1000000000000 --state-dir "$state" $(store_flags "$store") \
      ${GATEWAY_FLAGS:-} 2>"$state/gateway.log" &
    gateway_pid=$!
    port=
    for _ in $(seq 100); do
      port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$state/gateway.log")
      [ -n "$port" ] && break
      sleep 0.1
    done
    [ -n "$port" ] || { cat "$state/gateway.log" >&2; exit 1; }
    session=$(curl -sf -X POST -d '{"workspace_id":"wrk"}' \
      "http://127.0.0.1:$port/gateway/external-coding-agent/sessions" |
      sed 's/.*"session_id":"\([^"]*\)".*/\1/')
    line=$(wrk -t1 -c"$clients" -d"${duration_s}s" -s "$root/bench/progress.lua" \
      "http://127.0.0.1:$port/gateway/external-coding-agent/sessions/$session/progress" | tail -1)
    echo "$store $repeat $line" >>"$results"
    echo "   wrk $store run $repeat: $line" >&2
    kill "$gateway_pid"
    wait "$gateway_pid" 2>/dev/null || true
    gateway_pid=
  done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { sed -n "s/^$1 [0-9]* .*\"$2\":\([0-9.]*\).*/\1/p" "$results"; }
section=$work/section.md
{
  echo "$heading"
  echo
  echo "Written by \`make bench-append\` (\`bench/run-append-wrk.sh\`) on $(date -u '+%Y-%m-%d %H:%M UTC');"
  echo "do not edit by hand, rerun it. Same machine and gateway flags as the section above, but"
  echo "one session and [wrk](https://github.com/wg/wrk) as the client: \`wrk -t1 -c$clients"
  echo "-d${duration_s}s -s bench/progress.lua http://127.0.0.1:\$PORT/gateway/external-coding-agent/sessions/\$ID/progress\`"
  echo "($MESSAGE_BYTES-byte messages). wrk spends a fraction of append_load's CPU per request, so"
  echo "the gateway gets more of the second core. Median of $repeats runs; latency from wrk."
  echo
  echo "| store | appends/s (median) | spread | p50 µs | p99 µs | ÷ memory |"
  echo "|---|---:|---|---:|---:|---:|"
  memory_rate=$(field memory appends_per_second | median)
  for store in $stores; do
    rate=$(field "$store" appends_per_second | median)
    spread="$(field "$store" appends_per_second | sort -n | head -1 | cut -d. -f1)–$(field "$store" appends_per_second | sort -n | tail -1 | cut -d. -f1)"
    ratio=$(awk -v a="$rate" -v b="${memory_rate:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "–" }')
    echo "| $store | ${rate%.*} | $spread | $(field "$store" latency_p50_us | median) | $(field "$store" latency_p99_us | median) | $ratio |"
  done
  echo
  echo "<details><summary>Raw results</summary>"
  echo
  echo '```text'
  cat "$results"
  echo '```'
  echo
  echo "</details>"
} >"$section"

if [ "$write_docs" = 1 ]; then
  "$root/bench/replace-section.sh" "$out_doc" "$heading" "$section"
  echo "wrote the wrk append-path section of $out_doc" >&2
fi
cat "$section"
