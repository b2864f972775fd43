#!/usr/bin/env bash
# Append-path benchmark (`make bench-append`): progress appends per second for each store.
#
# For each store configuration in STORES and each session count it starts a fresh gateway (own
# temporary --state-dir, port 0) and runs BUILD_DIR/append_load against it: CLIENTS keep-alive
# connections posting progress appends back to back, spread round-robin over the sessions. Every
# configuration runs BENCH_REPEATS times (default 3); the report gives the median and the min–max
# spread. The figures go into docs/benchmarks.md, replacing its previous
# "## Append path (make bench-append)" section (WRITE_DOCS=0: only print the section).
#
# Usage: bench/run-append.sh [BUILD_DIR]
# Environment (defaults in brackets):
#   STORES           store configurations [memory sqlite-normal sqlite-full]:
#                    memory        --store memory
#                    sqlite-normal --store sqlite --durability normal
#                    sqlite-full   --store sqlite --durability full
#                    current       no store flags (whatever the binary does by default)
#   SWEEP_STORES     stores also run with each count of SESSION_SWEEP sessions
#                    [the STORES entries other than sqlite-full]
#   SESSION_SWEEP    [1 10 100 1000] (empty: no sweep); every store also runs with CLIENTS sessions
#   CLIENTS [64]  DURATION_S [8]  WARMUP_S [2]  MESSAGE_BYTES [100]  LOAD_THREADS [1]
#   GATEWAY_THREADS [1]  BENCH_REPEATS [3]  WRITE_DOCS [1]  BENCH_OUT [docs/benchmarks.md]
#   GATEWAY_BIN [BUILD_DIR/tau-gateway]  LOAD_BIN [BUILD_DIR/append_load]
#   STATE_PARENT     where the per-run state dirs go [BUILD_DIR]: on the disk under test, not a
#                    tmpfs /tmp, or --durability full measures nothing
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# raw_results; this script keeps its own server start and report helpers.
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
build_dir=${1:-$root/build}
gateway_bin=${GATEWAY_BIN:-$build_dir/tau-gateway}
load_bin=${LOAD_BIN:-$build_dir/append_load}
stores=${STORES:-memory sqlite-normal sqlite-full}
session_sweep=${SESSION_SWEEP-1 10 100 1000}
clients=${CLIENTS:-64}
duration_s=${DURATION_S:-8}
warmup_s=${WARMUP_S:-2}
message_bytes=${MESSAGE_BYTES:-100}
load_threads=${LOAD_THREADS:-1}
# One I/O thread: on 2 cores shared with the load generator and the store's writer thread, a
# second I/O thread only adds contention (measured: fewer appends/s, see docs/benchmarks.md).
gateway_threads=${GATEWAY_THREADS:-1}
repeats=${BENCH_REPEATS:-3}
write_docs=${WRITE_DOCS:-1}
out_doc=${BENCH_OUT:-$root/docs/benchmarks.md}
state_parent=${STATE_PARENT:-$build_dir}
heading="## Append path (make bench-append)"

store_flags() {  # store -> the gateway flags for it, one per line
  case $1 in
    memory) printf '%s\n' --store memory ;;
    sqlite-normal) printf '%s\n' --store sqlite --durability normal ;;
    sqlite-full) printf '%s\n' --store sqlite --durability full ;;
    current) ;;
    *) return 1 ;;
  esac
}
for store in $stores; do
  store_flags "$store" >/dev/null || { echo "unknown store '$store' in STORES" >&2; exit 2; }
done
if [ -z "${SWEEP_STORES+set}" ]; then
  sweep_stores=""
  for store in $stores; do [ "$store" = sqlite-full ] || sweep_stores="$sweep_stores $store"; done
else
  sweep_stores=$SWEEP_STORES
fi

for bin in "$gateway_bin" "$load_bin"; do
  [ -x "$bin" ] || { echo "missing $bin: run make build" >&2; exit 1; }
done

# The configurations: "store sessions", each store with CLIENTS sessions, the sweep stores also
# with each count of SESSION_SWEEP.
configs=()
for store in $stores; do
  configs+=("$store $clients")
  case " $sweep_stores " in
    *" $store "*)
      for sessions in $session_sweep; do
        [ "$sessions" = "$clients" ] || configs+=("$store $sessions")
      done
      ;;
  esac
done

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/tau-bench-append.XXXXXX)
states=$(mktemp -d "$state_parent/bench-append-state.XXXXXX")
server_pid=""
stop_server() {  # by pid only: other gateways may run on this machine
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() { stop_server; rm -rf "$work" "$states"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

gateway_port=""
start_gateway() {  # store state_dir
  local flags
  mapfile -t flags < <(store_flags "$1")
  gateway_cmd=("$gateway_bin" --auth-mode localhost-dev --bind 127.0.0.1:0
    --threads "$gateway_threads" --rate-limit-max-requests 1000000000000
    --max-active-sessions 1000000 --state-dir "$2" "${flags[@]}")
  : >"$work/gateway.log"
  "${gateway_cmd[@]}" >"$work/gateway.log" 2>&1 &
  server_pid=$!
  gateway_port=""
  for _ in $(seq 100); do
    gateway_port=$(sed -n -E 's|.*listening on http://127\.0\.0\.1:([0-9]+).*|\1|p' \
      "$work/gateway.log" | head -1)
    [ -n "$gateway_port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the gateway did not start listening:" >&2
  cat "$work/gateway.log" >&2
  stop_server
  return 1
}

printable() {  # words -> one shell-quoted line
  local arg out=()
  for arg in "$@"; do
    if [[ $arg =~ [^A-Za-z0-9_./:=@%+-] ]]; then out+=("'$arg'"); else out+=("$arg"); fi
  done
  echo "${out[*]}"
}

results=$work/results.txt  # "store sessions repeat <json>"
failures=$work/failures.txt
logs_dir=$build_dir/bench-append-logs
: >"$results"
: >"$failures"
run_once() {  # store sessions repeat
  local store=$1 sessions=$2 repeat=$3 label="$1/$2/$3"
  local state=$states/${store}-${sessions}-${repeat}
  echo "== $store, $sessions sessions, $clients clients, run $repeat/$repeats" >&2
  # A gateway that does not start is misconfigured (e.g. a store flag it lacks): stop here.
  start_gateway "$store" "$state" || { echo "$label: the gateway did not start" >&2; exit 1; }
  local cmd=("$load_bin" --host 127.0.0.1 --port "$gateway_port" --clients "$clients"
    --sessions "$sessions" --duration-s "$duration_s" --warmup-s "$warmup_s"
    --message-bytes "$message_bytes" --threads "$load_threads" --pid "$server_pid"
    --label "$label")
  local line status=0 note=""
  line=$("${cmd[@]}" 2>"$work/load.err") || status=$?
  sed 's/^/   /' "$work/load.err" >&2
  if ! kill -0 "$server_pid" 2>/dev/null; then
    local server_status=0
    wait "$server_pid" 2>/dev/null || server_status=$?
    server_pid=""
    note="the gateway exited with status $server_status during the run"
    echo "   $note" >&2
  fi
  if [ "$status" -ne 0 ] || [ -n "$note" ] || [ -z "$line" ]; then
    local keep="$logs_dir/${label//\//-}"
    mkdir -p "$keep"
    cp "$work/load.err" "$keep/append_load.err"
    cp "$work/gateway.log" "$keep/gateway.log"
    echo "   incomplete run (append_load status $status): left out of the medians; logs in $keep" >&2
    echo "$label: append_load status $status${note:+; $note}${line:+; $line}" >>"$failures"
  else
    echo "$store $sessions $repeat $line" >>"$results"
  fi
  stop_server
  rm -rf "$state"
  if [ "$repeat" -eq 1 ]; then
    printable "${gateway_cmd[@]}" | sed "s|$states/[^ ]*|\$STATE_DIR|; s|$root/||g" \
      >>"$work/commands.txt"
    printable "${cmd[@]}" | sed -E "s/--port [0-9]+/--port \$PORT/; s/--pid [0-9]+/--pid \$PID/; s|$root/||g" \
      >>"$work/commands.txt"
  fi
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
for repeat in $(seq "$repeats"); do
  for config in "${configs[@]}"; do
    read -r store sessions <<<"$config"
    run_once "$store" "$sessions" "$repeat"
  done
done

# ---- report -------------------------------------------------------------------------------
field() {  # key: values of a numeric JSON field of the result lines on stdin
  sed -n -E "s/.*\"$1\":(-?[0-9.]+).*/\1/p"
}
median() {  # of the numbers on stdin
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
spread() {  # decimals: min–max of the numbers on stdin
  sort -g | awk -v d="$1" 'NR == 1 { lo = $1 } { hi = $1 } END { f = "%." d "f"; if (NR) printf f "–" f, lo, hi; else printf "n/a" }'
}
select_runs() { awk -v s="$1" -v n="$2" '$1 == s && $2 == n' "$results"; }
figure() {  # store sessions key -> median
  select_runs "$1" "$2" | field "$3" | median
}
ratio() {  # a b -> a/b with two decimals
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
fmt() {  # number with the given decimals
  awk -v v="$1" -v d="$2" 'BEGIN { if (v == "n/a") print v; else printf "%." d "f", v }'
}
pct() {  # number -> "N %"
  awk -v v="$1" 'BEGIN { if (v == "n/a" || v < 0) print "n/a"; else printf "%.0f %%", v }'
}

has_config() {  # store sessions: is it one of the configurations?
  local config
  for config in "${configs[@]}"; do [ "$config" = "$1 $2" ] && return 0; done
  return 1
}

cpu_model=$(sed -n -E 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
state_fs=$(findmnt -n -o FSTYPE,SOURCE -T "$state_parent" 2>/dev/null | awk '{ print $1 " on " $2 }')
if [ -n "${GATEWAY_BIN:-}" ]; then
  commit="\`$gateway_bin\` (GATEWAY_BIN)"
else
  commit="commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  git -C "$root" diff --quiet HEAD -- src 2>/dev/null || commit="$commit (src/ with uncommitted changes)"
fi

section=$work/section.md
{
  echo "$heading"
  echo
  echo "Written by \`make bench-append\` (\`bench/run-append.sh\`) on $started; do not edit by hand,"
  echo "rerun it."
  echo
  echo "- Machine: $(nproc) cores, $cpu_model, $mem_total RAM, Linux $(uname -r); state dirs on"
  echo "  ${state_fs:-an unknown file system}."
  echo "- Gateway: $commit."
  echo "  \`--threads $gateway_threads\`, \`--auth-mode localhost-dev\`, default retention"
  echo "  (\`--max-events-per-session\`); a fresh process and an empty \`--state-dir\` for every run."
  echo "  Stores: *memory* = \`--store memory\`, *sqlite-normal* = \`--store sqlite --durability"
  echo "  normal\`, *sqlite-full* = \`--store sqlite --durability full\`, *current* = no store flag."
  echo "- Load: \`append_load\` ($load_threads thread) on the same machine, over loopback, sharing the"
  echo "  $(nproc) cores with the gateway. It opens the sessions first (one workspace each), then runs"
  echo "  $clients clients spread round-robin over them (with more sessions than clients, each client"
  echo "  takes turns over its share, so every session gets appends); each client is one keep-alive HTTP/1.1"
  echo "  connection posting \`{\"message\":...}\` ($message_bytes-byte message) to"
  echo "  \`/sessions/{id}/progress\` back to back, one request in flight. After ${warmup_s} s of warmup,"
  echo "  appends/s = 200 responses received in the next ${duration_s} s ÷ ${duration_s}. Latency: from"
  echo "  just before a request is written to the end of its response, over the measured window."
  echo "- Each figure is the median of the complete runs out of $repeats (spread: min–max of appends/s)."
  echo "  CPU columns are the medians over the measured window; 100 % is one core."
  echo
  echo "Commands (one run of each; the script starts the gateway on port 0 and reads the port from"
  echo "its log):"
  echo
  echo '```sh'
  awk '!seen[$0]++' "$work/commands.txt" 2>/dev/null || true
  echo '```'
  echo
  echo "| store | sessions | clients | appends/s (median) | spread | p50 µs | p99 µs | max µs | generator CPU | gateway CPU | complete runs |"
  echo "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
  for config in "${configs[@]}"; do
    read -r store sessions <<<"$config"
    echo "| $store | $sessions | $clients | $(fmt "$(figure "$store" "$sessions" appends_per_second)" 0) | $(select_runs "$store" "$sessions" | field appends_per_second | spread 0) | $(fmt "$(figure "$store" "$sessions" latency_p50_us)" 0) | $(fmt "$(figure "$store" "$sessions" latency_p99_us)" 0) | $(fmt "$(figure "$store" "$sessions" latency_max_us)" 0) | $(pct "$(figure "$store" "$sessions" generator_cpu_pct)") | $(pct "$(figure "$store" "$sessions" server_cpu_pct)") | $(select_runs "$store" "$sessions" | wc -l)/$repeats |"
  done
  echo
  ratio_rows=""
  for config in "${configs[@]}"; do
    read -r store sessions <<<"$config"
    case $store in sqlite-*) ;; *) continue ;; esac
    has_config memory "$sessions" || continue
    ratio_rows="$ratio_rows| $store ÷ memory | $sessions | $(ratio "$(figure "$store" "$sessions" appends_per_second)" "$(figure memory "$sessions" appends_per_second)") | $(ratio "$(figure "$store" "$sessions" latency_p50_us)" "$(figure memory "$sessions" latency_p50_us)") | $(ratio "$(figure "$store" "$sessions" latency_p99_us)" "$(figure memory "$sessions" latency_p99_us)") |
"
  done
  if [ -n "$ratio_rows" ]; then
    echo "Ratios of the medians (appends/s: 1 means SQLite costs nothing; latency: above 1 is slower):"
    echo
    echo "| stores | sessions | appends/s | p50 | p99 |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s' "$ratio_rows"
    echo
  fi
  if [ -s "$failures" ]; then
    echo "Incomplete runs, left out of the medians (a request failed, or the gateway exited; their"
    echo "logs were kept under \`${logs_dir#"$root"/}\`):"
    echo
    sed 's/^/- /' "$failures"
    echo
  fi
  raw_results "$results"
} >"$section"

if [ ! -s "$results" ]; then
  cat "$section"
  echo "no complete run: $out_doc left unchanged" >&2
  exit 1
elif [ "$write_docs" = 1 ]; then
  "$root/bench/replace-section.sh" "$out_doc" "$heading" "$section"
  echo "wrote the append-path section of $out_doc" >&2
else
  echo "WRITE_DOCS=$write_docs: $out_doc left unchanged" >&2
fi
cat "$section"
