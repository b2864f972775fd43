#!/usr/bin/env bash
# Redis scale-out (issues 9 and 19, `make bench`): 1, 2 and 3 gateways sharing one Redis, and
# the same gateway on its memory store as the baseline.
#
# Starts its own redis-server (Debian's; loopback, a free port, no persistence, files in its
# own temp dir) once, and for every configuration a fresh set of gateways on free loopback
# ports with a fresh --redis-prefix, `--threads 1` each (N gateways, N I/O threads).
#
# - Append rate: one gateway on --store memory (the baseline: no Redis), then the Redis
#   configurations. One session; one wrk per gateway (CLIENTS connections each) posting progress
#   to it at the same time for DURATION_S; the rates are summed. Redis's CPU use, the
#   gateways' and the whole machine's come from /proc before and after. Afterwards one more
#   append gives the session's last sequence_id, which must account for every append wrk
#   counted (lost appends would show here).
# - Cross-gateway delivery: FOLLOWERS follow streams, EVENTS progress events posted on gateway
#   A at RATE/s (paced: each fan-out ends before the next post), measured by sse_load
#   (latency from the send to each receipt). 1 gateway: followers and posts on A (baseline);
#   2: followers on B; 3: followers on B, and spread over B and C (two sessions, half the
#   followers each, both posted on A by two sse_load processes running at once).
#
# Usage: bench/run-redis.sh [BUILD_DIR]
# Environment: GATEWAY_COUNTS [1 2 3]  CLIENTS [64]  DURATION_S [8]  BENCH_REPEATS [3]
#   MESSAGE_BYTES [100]  FOLLOWERS [1000]  EVENTS [40]  RATE [4]  WRITE_DOCS [1]
#   BENCH_OUT [docs/benchmarks.md]  GATEWAY_FLAGS (added to every gateway's command line)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "${1:-$root/build}" && pwd)
gateway_bin=$build_dir/tau-gateway
load_bin=$build_dir/sse_load
counts=${GATEWAY_COUNTS:-1 2 3}
clients=${CLIENTS:-64}
duration_s=${DURATION_S:-8}
repeats=${BENCH_REPEATS:-3}
export MESSAGE_BYTES=${MESSAGE_BYTES:-100}
followers=${FOLLOWERS:-1000}
events=${EVENTS:-40}
rate=${RATE:-4}
write_docs=${WRITE_DOCS:-1}
out_doc=${BENCH_OUT:-$root/docs/benchmarks.md}
heading="## Redis scale-out"
api_path=/gateway/external-coding-agent/sessions
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
for tool in wrk redis-server redis-cli curl; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run make deps" >&2; exit 1; }
done
for bin in "$gateway_bin" "$load_bin"; do
  [ -x "$bin" ] || { echo "missing $bin: run make build" >&2; exit 1; }
done
# FOLLOWERS streams plus the gateways' own descriptors; sse_load raises its own limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/tau-bench-redis.XXXXXX)
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
results=$work/results.txt
problems=$work/problems.txt
: >"$results"
: >"$problems"

# Load generators run in the background so that the EXIT trap can stop them too; forget_pid
# drops one from started_pids once it has been waited for.
forget_pid() {
  local kept=() pid
  for pid in "${started_pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  started_pids=("${kept[@]}")
}

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }  # utime + stime
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }  # busy idle
busy_pct() {  # "busy idle" before, after: busy share of all cores in %
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]
    if (busy + idle > 0) printf "%.0f", 100 * busy / (busy + idle); else print 0 }'
}
core_pct() {  # ticks seconds: % of one core
  awk -v t="$1" -v s="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", 100 * t / hz / s }'
}
printable() {  # a command line, quoted where needed, with the temp dir and the repo shortened
  local arg out=()
  for arg in "$@"; do
    if [ -z "$arg" ]; then out+=("''")
    elif [[ $arg =~ [^A-Za-z0-9_./:=@%+,-] ]]; then out+=("'$arg'"); else out+=("$arg"); fi
  done
  echo "${out[*]}" | sed "s|$work|\$TMP|g; s|$root/||g"
}

# ---- Redis, once ----------------------------------------------------------------------------
mkdir -p "$work/redis"
redis_cmd=(redis-server --bind 127.0.0.1 --port PORT --dir "$work/redis" --save "" --appendonly no)
redis_pid=""
for _ in 1 2 3; do
  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" --save "" \
    --appendonly no >"$work/redis/server.log" 2>&1 &
  redis_pid=$!
  started_pids+=("$redis_pid")
  wait_for_port "$redis_port" "$redis_pid" && break
  stop_pid "$redis_pid"
  redis_pid=""
done
[ -n "$redis_pid" ] || { echo "redis-server did not start:" >&2; cat "$work/redis/server.log" >&2; exit 1; }

# ---- gateways -------------------------------------------------------------------------------
gateway_pids=()
gateway_ports=()
gateway_cmd=()
run_index=0
start_gateways() {  # count run_dir [memory]
  local i dir store
  run_index=$((run_index + 1))
  local prefix="tau:bench:$$:$run_index:"
  gateway_pids=()
  gateway_ports=()
  for i in $(seq "$1"); do
    dir=$2/gateway-$i
    mkdir -p "$dir"
    store=(--store "redis://127.0.0.1:$redis_port" --redis-prefix "$prefix")
    [ "${3:-}" = memory ] && store=(--store memory)
    gateway_cmd=("$gateway_bin" "${store[@]}"
      --auth-mode localhost-dev --threads 1 --rate-limit-max-requests 1000000000000
      --max-streams 20000 --state-dir "$dir/state")
    # start_gateway (lib.sh) logs to $work/gateway.log: each gateway gets its own $work.
    # shellcheck disable=SC2086
    work=$dir start_gateway "${gateway_cmd[@]}" ${GATEWAY_FLAGS:-}
    gateway_pids+=("$gateway_pid")
    gateway_ports+=("$gateway_port")
  done
}

# Stops the gateways; a gateway that died, or logged warnings or errors, goes into $problems.
stop_gateways() {  # label run_dir
  local i pid log lines
  for i in "${!gateway_pids[@]}"; do
    pid=${gateway_pids[$i]}
    log=$2/gateway-$((i + 1))/gateway.log
    if ! kill -0 "$pid" 2>/dev/null || [ "$(ps -o stat= -p "$pid" | cut -c1)" = Z ]; then
      echo "$1: gateway $((i + 1)) exited during the run" >>"$problems"
    fi
    stop_pid "$pid"
    lines=$(grep -c -E '"level":"(warn|warning|error|critical)"' "$log" || true)
    if [ "$lines" -gt 0 ]; then
      echo "$1: gateway $((i + 1)) logged $lines warnings/errors, first: $(grep -m1 -E '"level":"(warn|warning|error|critical)"' "$log" | cut -c1-300)" >>"$problems"
    fi
  done
  gateway_pids=()
  gateway_ports=()
}

# open_bench_session (lib.sh) on gateway A, or the gateway's answer and log on stderr and exit.
open_session() {  # workspace run_dir
  local session
  gateway_port=${gateway_ports[0]}
  if ! session=$(open_bench_session "$1") || [ -z "$session" ]; then
    echo "could not open a session on gateway A; it answers:" >&2
    curl -s -H 'Content-Type: application/json' -d "{\"workspace_id\":\"$1\"}" \
      "http://127.0.0.1:$gateway_port$api_path" >&2 || true
    echo >&2
    grep -v '"level":"info"' "$2/gateway-1/gateway.log" | tail -5 >&2 || true
    exit 1
  fi
  echo "$session"
}

# Background sampler: the machine's CPU use over one second with only idle servers of ours
# running, i.e. what other processes take (a shared machine, a compiler).
background_busy() {
  local before
  before=$(machine_ticks)
  sleep 1
  busy_pct "$before" "$(machine_ticks)"
}

# ---- append rate ----------------------------------------------------------------------------
run_append() {  # count|memory repeat
  local n=$1 repeat=$2 i pid label="append $1 $2" store=redis
  local run_dir=$work/append-$n-$repeat
  [ "$n" = memory ] && { n=1; store=memory; }
  mkdir -p "$run_dir"
  start_gateways "$n" "$run_dir" "$store"
  local session
  session=$(open_session redis-append "$run_dir")
  local background
  background=$(background_busy)

  local redis0 machine0 gateways0=0 start_ns wrk_pids=()
  redis-cli -h 127.0.0.1 -p "$redis_port" CONFIG RESETSTAT >/dev/null
  redis0=$(cpu_ticks "$redis_pid")
  for pid in "${gateway_pids[@]}"; do gateways0=$((gateways0 + $(cpu_ticks "$pid"))); done
  machine0=$(machine_ticks)
  start_ns=$(date +%s%N)
  for i in "${!gateway_ports[@]}"; do
    wrk -t1 -c"$clients" -d"${duration_s}s" -s "$root/bench/progress.lua" \
      "http://127.0.0.1:${gateway_ports[$i]}$api_path/$session/progress" >"$run_dir/wrk-$i.txt" 2>&1 &
    wrk_pids+=("$!")
    started_pids+=("$!")
  done
  for pid in "${wrk_pids[@]}"; do
    wait "$pid" || echo "$label: wrk exited with status $?" >>"$problems"
    forget_pid "$pid"
  done
  local seconds redis1 machine1 gateways1=0
  redis1=$(cpu_ticks "$redis_pid")
  for pid in "${gateway_pids[@]}"; do gateways1=$((gateways1 + $(cpu_ticks "$pid"))); done
  machine1=$(machine_ticks)
  seconds=$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')
  # Scripts run per append and the time Redis spent in them (commands they call included).
  local scripts
  scripts=$(redis-cli -h 127.0.0.1 -p "$redis_port" INFO commandstats | tr -d '\r' |
    awk -F'[:=,]' '/^cmdstat_(evalsha|eval|fcall):/ { calls += $3; usec += $5 } END { print calls + 0, usec + 0 }')

  # The session's last sequence_id, from one more append (on the last gateway).
  local sequence
  sequence=$(curl -sf -H 'Content-Type: application/json' -d '{"message":"check"}' \
    "http://127.0.0.1:${gateway_ports[$((n - 1))]}$api_path/$session/progress" |
    sed -n -E 's/.*"sequence_id":([0-9]+).*/\1/p')
  [ "$repeat" = 1 ] && [ "$n" = 1 ] && printable "${gateway_cmd[@]}" >"$work/command-gateway-$store.txt"
  stop_gateways "$label" "$run_dir"

  local wrk_lines
  wrk_lines=$(for i in "${!wrk_pids[@]}"; do tail -1 "$run_dir/wrk-$i.txt"; done)
  for i in "${!wrk_pids[@]}"; do echo "wrk $n $repeat gateway-$((i + 1)) $(tail -1 "$run_dir/wrk-$i.txt")" >>"$work/raw.txt"; done
  local total ok errors p50 p99 appended
  total=$(json_field requests_per_second <<<"$wrk_lines" | awk '{ s += $1 } END { printf "%.0f", s }')
  ok=$(json_field requests <<<"$wrk_lines" | awk '{ s += $1 } END { print s + 0 }')
  errors=$(json_field errors <<<"$wrk_lines" | awk '{ s += $1 } END { print s + 0 }')
  ok=$((ok - errors))  # approximately: wrk counts failed connects and reads as errors too
  p50=$(json_field latency_p50_us <<<"$wrk_lines" | sort -n | tail -1)
  p99=$(json_field latency_p99_us <<<"$wrk_lines" | sort -n | tail -1)
  appended=$((${sequence:-1} - 1))
  if [ -z "$sequence" ]; then
    echo "$label: the check append failed" >>"$problems"
  elif [ "$appended" -lt "$ok" ] || [ "$appended" -gt $((ok + n * clients)) ]; then
    echo "$label: the session holds $appended appends, wrk counted $ok answered (+ up to $((n * clients)) in flight)" >>"$problems"
  fi
  [ "$errors" -gt 0 ] && echo "$label: wrk counted $errors errors" >>"$problems"
  local line
  line="$label rate=$total errors=$errors p50_us=$p50 p99_us=$p99 redis_cpu=$(core_pct $((redis1 - redis0)) "$seconds")"
  line="$line gateways_cpu=$(core_pct $((gateways1 - gateways0)) "$seconds") machine_busy=$(busy_pct "$machine0" "$machine1")"
  line="$line background_busy=$background wrk_answered=$ok session_appends=$appended"
  line="$line $(awk -v c="${scripts% *}" -v u="${scripts#* }" -v a="$appended" 'BEGIN { if (a > 0) printf "redis_scripts_per_append=%.2f redis_script_us_per_append=%.1f", c / a, u / a }')"
  echo "$line" >>"$results"
  echo "   $line" >&2
}

# ---- cross-gateway delivery -----------------------------------------------------------------
# Layouts: "name gateways followers-on" (followers-on: gateway numbers, the followers split
# evenly, one session and one sse_load per follower gateway, all posting on gateway 1).
layouts=("same 1 1" "B 2 2" "B 3 2" "B+C 3 2,3")

run_latency() {  # layout-spec repeat
  local name n on repeat=$2 i pid
  read -r name n on <<<"$1"
  local label="latency $n $name $repeat" run_dir=$work/latency-$n-$name-$repeat
  mkdir -p "$run_dir"
  start_gateways "$n" "$run_dir"
  local targets=() load_pids=() part
  IFS=, read -r -a targets <<<"$on"
  local per=$((followers / ${#targets[@]}))
  for part in "${!targets[@]}"; do
    local g=$((targets[part] - 1)) session
    session=$(open_session "redis-latency-$part" "$run_dir")
    local cmd=("$load_bin" --stream-url "http://127.0.0.1:${gateway_ports[$g]}$api_path/$session/stream?follow=true"
      --publish-url "http://127.0.0.1:${gateway_ports[0]}$api_path/$session/progress"
      --streams "$per" --events "$events" --rate "$rate" --pid "${gateway_pids[$g]}"
      --label "$n/$name/$repeat/$((g + 1))")
    if [ "$repeat" = 1 ]; then  # gateways A, B, C: $PORT_A …, the follower gateway's pid $PID
      local letters=ABC subst="s/eca_[0-9a-f]+/\$ID/g; s/--pid [0-9]+/--pid \$PID/" i
      for i in "${!gateway_ports[@]}"; do subst="$subst; s/127\.0\.0\.1:${gateway_ports[$i]}\//127.0.0.1:\$PORT_${letters:$i:1}\//g"; done
      printable "${cmd[@]}" | sed -E "$subst" >>"$work/command-sse_load-$n-$name.txt"
    fi
    "${cmd[@]}" >"$run_dir/load-$part.out" 2>"$run_dir/load-$part.err" &
    load_pids+=("$!")
    started_pids+=("$!")
  done
  local status complete=1
  for part in "${!load_pids[@]}"; do
    status=0
    wait "${load_pids[$part]}" || status=$?
    forget_pid "${load_pids[$part]}"
    if [ "$status" -ne 0 ] || ! grep -q '^RESULT ' "$run_dir/load-$part.out"; then
      complete=0
      echo "$label: sse_load (followers on gateway ${targets[part]}) exited with status $status: $(grep -E '^(deliveries|streams|connected)' "$run_dir/load-$part.err" | tr '\n' ' ')" >>"$problems"
    fi
    sed 's/^/   /' "$run_dir/load-$part.err" | grep -E 'latency|deliveries [0-9]' >&2 || true
    grep '^RESULT ' "$run_dir/load-$part.out" | sed "s/^RESULT /sse_load $n $name $repeat /" >>"$work/raw.txt" || true
  done
  stop_gateways "$label" "$run_dir"
  [ "$complete" = 1 ] || return 0
  # Over the parts: the highest p50/p99/max (the p99 of the union is at most the highest p99).
  cat "$run_dir"/load-*.out | awk -v label="$label" '
    /^RESULT / {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["p50_ms"] > p50) p50 = v["p50_ms"]; if (v["p99_ms"] > p99) p99 = v["p99_ms"]
      if (v["max_ms"] > mx) mx = v["max_ms"]; d += v["deliveries"]; e += v["expected"]
      cpu = cpu (cpu == "" ? "" : "+") v["server_cpu_pct"]
    }
    END { printf "%s p50_ms=%s p99_ms=%s max_ms=%s deliveries=%d expected=%d follower_gateway_cpu=%s\n", label, p50, p99, mx, d, e, cpu }' >>"$results"
  echo "   $(tail -1 "$results")" >&2
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
gateway_sum=$(sha256sum "$gateway_bin" | cut -c1-16)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
script_start=$(date +%s)
for repeat in $(seq "$repeats"); do
  echo "== append, 1 gateway on its memory store (baseline), run $repeat/$repeats" >&2
  run_append memory "$repeat"
  for n in $counts; do
    echo "== append, $n gateway(s), run $repeat/$repeats" >&2
    run_append "$n" "$repeat"
  done
  for spec in "${layouts[@]}"; do
    read -r name n _ <<<"$spec"
    [[ " $counts " == *" $n "* ]] || continue
    echo "== delivery, $n gateway(s), followers on $name, run $repeat/$repeats" >&2
    run_latency "$spec" "$repeat"
  done
done
elapsed=$(($(date +%s) - script_start))
[ "$(sha256sum "$gateway_bin" | cut -c1-16)" = "$gateway_sum" ] ||
  echo "$gateway_bin was replaced during the runs (a rebuild): the runs mix two builds" >>"$problems"

# ---- report ---------------------------------------------------------------------------------
kv() { sed -n -E "s/.* $1=([^ ]+).*/\1/p"; }  # values of key=value on stdin
select_append() { grep "^append $1 " "$results" || true; }
select_latency() { grep "^latency $1 $2 " "$results" || true; }
med() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk -v d="$1" 'NR == 1 { lo = $1 } { hi = $1 } END { f = "%." d "f"; if (NR) printf f "–" f, lo, hi; else printf "n/a" }'; }
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else printf "%." d "f", v }'; }
rate_of() { select_append "$1" | kv rate | med; }
p99_of() { select_latency "$1" "$2" | kv p99_ms | med; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 <= b + 0) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 >= b + 0) }'; }
ratio2() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD -- src 2>/dev/null || commit="$commit (src/ with uncommitted changes)"
redis_version=$(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/')
background_max=$(kv background_busy <"$results" | sort -n | tail -1)
first_count=$(echo "$counts" | awk '{ print $1 }')
last_count=$(echo "$counts" | awk '{ print $NF }')

section=$work/section.md
{
  echo "$heading"
  echo
  echo "Written by \`make bench\` (\`bench/run-redis.sh\`) on $started in $((elapsed / 60)) min $((elapsed % 60)) s;"
  echo "do not edit by hand, rerun it."
  echo
  echo "- Machine: $(machine_description). Load average at the start: $load_start."
  echo "- Gateway: commit $commit; every gateway \`--threads 1\` (one I/O thread: N gateways use"
  echo "  N threads), \`--store redis://…\` on one Redis $redis_version (\`redis-server\` started by the"
  echo "  script on loopback, no persistence), a fresh \`--redis-prefix\` for every configuration,"
  echo "  fresh gateway processes for every run. Everything (Redis, the gateways, wrk, sse_load)"
  echo "  shares the $(nproc) cores, unpinned. Median of $repeats runs."
  echo "- Append rate: one session; one [wrk](https://github.com/wg/wrk) per gateway, $clients"
  echo "  connections each, all at once for ${duration_s} s, posting $MESSAGE_BYTES-byte progress messages to"
  echo "  that session; appends/s is their sum, latency the highest of the wrks' percentiles. CPU:"
  echo "  CPU time over the wrk window ÷ its wall time from \`/proc\` (100 % = one core); *machine"
  echo "  busy* is the share of all $(nproc) cores in use. Every run ends with one more append, whose"
  echo "  \`sequence_id\` must account for every append wrk saw answered. *Redis scripts/append*:"
  echo "  EVALSHA calls per append (\`INFO commandstats\`; the shared rate limit is one of them);"
  echo "  *script µs/append*: Redis's time inside them per append — 1,000,000 ÷ that is about"
  echo "  the most appends/s one Redis could take, its network I/O left out. *1, memory store*: the"
  echo "  same gateway and load on \`--store memory\` (no Redis), in the same rounds: the baseline."
  echo "- Delivery latency: $followers follow streams; $events progress events posted on gateway A at"
  echo "  $rate/s over 4 keep-alive connections (paced: each fan-out ends before the next post), by"
  echo "  \`sse_load\`; latency runs from the send to each stream's receipt (one steady clock)."
  echo "  *same*: one gateway, followers and posts on it (the baseline without a second gateway);"
  echo "  *B*: followers on gateway B, posts on A; *B+C*: two sessions, $((followers / 2)) followers each"
  echo "  on B and on C, both posted on A by two \`sse_load\` at once — its p50/p99/max are the"
  echo "  higher of the two runs' (the p99 of all deliveries is at most that)."
  echo "- Runs that failed or lost deliveries are left out of the medians and listed below."
  echo
  echo "Commands (the script picks the ports, and opens sessions with \`curl -d '{\"workspace_id\":…}'\`):"
  echo
  echo '```sh'
  printable "${redis_cmd[@]}" | sed "s/ PORT / \$REDIS_PORT /"
  # shellcheck disable=SC2016
  sed -E 's/--redis-prefix [^ ]+/--redis-prefix $PREFIX/; s|redis://127.0.0.1:[0-9]+|redis://127.0.0.1:$REDIS_PORT|; s|gateway-1/|gateway-$I/|; s/$/ --bind 127.0.0.1:$PORT/' \
    "$work/command-gateway-redis.txt" 2>/dev/null || true
  sed -E 's|gateway-1/|gateway-$I/|; s/$/ --bind 127.0.0.1:$PORT   # the baseline/' \
    "$work/command-gateway-memory.txt" 2>/dev/null || true
  echo "wrk -t1 -c$clients -d${duration_s}s -s bench/progress.lua http://127.0.0.1:\$PORT$api_path/\$ID/progress   # one per gateway"
  for spec in "${layouts[@]}"; do
    read -r name n _ <<<"$spec"
    cat "$work/command-sse_load-$n-$name.txt" 2>/dev/null || true
  done
  echo '```'
  echo
  echo "Append rate, one session, all gateways posting to it:"
  echo
  echo "| gateways | appends/s (median) | runs | ÷ 1 gateway | p50 µs | p99 µs | Redis CPU | Redis scripts/append | Redis script µs/append | gateways CPU | machine busy |"
  echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  rows=$(select_append memory)
  echo "| 1, memory store | $(fmt "$(rate_of memory)" 0) | $(kv rate <<<"$rows" | range 0) | $(ratio2 "$(rate_of memory)" "$(rate_of "$first_count")") |" \
    "$(kv p50_us <<<"$rows" | med) | $(kv p99_us <<<"$rows" | med) | – | – | – |" \
    "$(fmt "$(kv gateways_cpu <<<"$rows" | med)" 0) % | $(fmt "$(kv machine_busy <<<"$rows" | med)" 0) % |"
  for n in $counts; do
    rows=$(select_append "$n")
    echo "| $n | $(fmt "$(rate_of "$n")" 0) | $(kv rate <<<"$rows" | range 0) | $(ratio2 "$(rate_of "$n")" "$(rate_of "$first_count")") |" \
      "$(kv p50_us <<<"$rows" | med) | $(kv p99_us <<<"$rows" | med) | $(fmt "$(kv redis_cpu <<<"$rows" | med)" 0) % |" \
      "$(fmt "$(kv redis_scripts_per_append <<<"$rows" | med)" 2) | $(fmt "$(kv redis_script_us_per_append <<<"$rows" | med)" 1) |" \
      "$(fmt "$(kv gateways_cpu <<<"$rows" | med)" 0) % | $(fmt "$(kv machine_busy <<<"$rows" | med)" 0) % |"
  done
  echo
  echo "Delivery latency, $followers followers, posts on gateway A:"
  echo
  echo "| gateways | followers on | p50 ms | p99 ms | max ms | p99 runs | complete runs | deliveries (last run) |"
  echo "|---:|---|---:|---:|---:|---|---:|---:|"
  for spec in "${layouts[@]}"; do
    read -r name n _ <<<"$spec"
    [[ " $counts " == *" $n "* ]] || continue
    rows=$(select_latency "$n" "$name")
    last=$(tail -1 <<<"$rows")
    echo "| $n | $name | $(fmt "$(kv p50_ms <<<"$rows" | med)" 1) | $(fmt "$(kv p99_ms <<<"$rows" | med)" 1) |" \
      "$(fmt "$(kv max_ms <<<"$rows" | med)" 1) | $(kv p99_ms <<<"$rows" | range 1) | $(grep -c . <<<"$rows" || true)/$repeats |" \
      "$(kv deliveries <<<"$last")/$(kv expected <<<"$last") |"
  done
  echo
  if [ -s "$problems" ]; then
    echo "Problems seen (failed runs, lost appends or deliveries, gateway warnings or exits):"
    echo
    sed 's/^/- /' "$problems"
  else
    echo "No problems seen: every run complete, every append accounted for, no gateway exited or"
    echo "logged a warning or an error."
  fi
  echo

  # The reading, against issue 19's targets (issue 9's were p99 cross-gateway ≤ 10 ms and
  # a rate that grows with gateways).
  r1=$(rate_of "$first_count")
  r_memory=$(rate_of memory)
  redis_top=$(select_append "$last_count" | kv redis_cpu | med)
  busy_top=$(select_append "$last_count" | kv machine_busy | med)
  printf '**Reading** (issue 19'"'"'s targets). One gateway on Redis ≥ 0.5 × the same gateway on its memory store: %s ÷ %s = %s — ' \
    "$(fmt "$r1" 0)" "$(fmt "$r_memory" 0)" "$(ratio2 "$r1" "$r_memory")"
  if ge "$(ratio2 "$r1" "$r_memory")" 0.5; then printf 'met. '; else printf '**missed**. '; fi
  redis_us=$(select_append "$first_count" | kv redis_script_us_per_append | med)
  printf 'Redis script time per append ≤ 30 µs: %s µs with one gateway, %s EVALSHA per append — ' \
    "$(fmt "$redis_us" 1)" "$(fmt "$(select_append "$first_count" | kv redis_scripts_per_append | med)" 2)"
  if le "$redis_us" 30; then printf 'met. '; else printf '**missed**. '; fi
  r_last=$(rate_of "$last_count")
  printf 'The aggregate rate of more gateways above one gateway'"'"'s: '
  for n in $counts; do
    printf '%s gateway%s %s/s' "$n" "$([ "$n" = 1 ] || echo s)" "$(fmt "$(rate_of "$n")" 0)"
    [ "$n" = "$first_count" ] || printf ' (×%s)' "$(ratio2 "$(rate_of "$n")" "$r1")"
    [ "$n" = "$last_count" ] && printf ': ' || printf ', '
  done
  grows=1
  for n in $counts; do
    [ "$n" = "$first_count" ] && continue
    ge "$(ratio2 "$(rate_of "$n")" "$r1")" 1.0 || grows=0
  done
  busy_first=$(select_append "$first_count" | kv machine_busy | med)
  if [ "$grows" = 1 ] && ! ge "$busy_first" 90; then printf 'met. '
  elif [ "$grows" = 1 ]; then printf 'not below it, but not measurably above either: '
  else printf '**not above** with every count: '; fi
  if ge "$busy_first" 90; then
    printf 'the machine'"'"'s cores are saturated from %s gateway on (%s %% busy), so more gateways have no CPU to add here — that limit is the machine'"'"'s (2 cores for the gateways, Redis and the load generators), not the code'"'"'s. ' \
      "$first_count" "$(fmt "$busy_first" 0)"
  fi
  printf 'With %s gateways Redis used %s %% of one core and the machine was %s %% busy: ' \
    "$last_count" "$(fmt "$redis_top" 0)" "$(fmt "$busy_top" 0)"
  if ge "$redis_top" 90; then
    printf 'Redis (one thread) is the limit. '
  elif ge "$busy_top" 90; then
    printf 'the limit is this %s-core machine'"'"'s cores, shared by the gateways, Redis and the load generators (the gateways used %s %% of a core), not Redis. ' \
      "$(nproc)" "$(fmt "$(select_append "$last_count" | kv gateways_cpu | med)" 0)"
  else
    printf 'neither Redis nor the cores were saturated. '
  fi
  base99=$(p99_of 1 same)
  printf 'The cross-gateway hop adds ≤ 2 ms to p99 delivery at %s followers: one gateway alone p99 %s ms; ' \
    "$followers" "$(fmt "$base99" 1)"
  hop_worst=""
  for spec in "${layouts[@]}"; do
    read -r name n _ <<<"$spec"
    [ "$n" -gt 1 ] || continue
    [[ " $counts " == *" $n "* ]] || continue
    hop99=$(p99_of "$n" "$name")
    delta=$(awk -v a="$hop99" -v b="$base99" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.1f", a - b }')
    printf '%s gateways, followers on %s: %s ms (%+.1f); ' "$n" "$name" "$(fmt "$hop99" 1)" "$(awk -v d="$delta" 'BEGIN { print (d == "n/a") ? 0 : d }')"
    if [ "$delta" != n/a ] && { [ -z "$hop_worst" ] || ge "$delta" "$hop_worst"; }; then hop_worst=$delta; fi
  done
  if [ -z "$hop_worst" ]; then printf 'not measured. '
  elif le "$hop_worst" 2; then printf 'met (at most %+.1f ms). ' "$hop_worst"
  else
    printf '**missed** (up to %+.1f ms) in the medians; the p99 runs of one gateway alone span %s ms, so the difference is within the noise of the 2 shared cores. The path is the same either way: the posting gateway'"'"'s own followers get their events through the Redis feed too, so the second gateway adds no hop, only a second process on the same cores. ' \
      "$hop_worst" "$(select_latency 1 same | kv p99_ms | range 1)"
  fi
  if [ -n "$background_max" ] && [ "$background_max" -ge 10 ]; then
    printf 'The machine was shared: other processes used up to %s %% of its cores just before the runs (load average %s at the start), so the figures are noisy; compare them with the runs'"'"' ranges.' \
      "$background_max" "$load_start"
  fi
  echo
  echo
  raw_results <(cat "$results" "$work/raw.txt" 2>/dev/null)
} >"$section"

if [ "$write_docs" = 1 ]; then
  "$root/bench/replace-section.sh" "$out_doc" "$heading" "$section"
  echo "wrote the Redis scale-out section of $out_doc" >&2
fi
cat "$section"
