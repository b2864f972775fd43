# Shell helpers shared by the benchmark scripts (source it). Every server a benchmark needs is
# started here on a free loopback port with its own files under $work, and stopped by stop_all.
# The caller sets `work` (a temp dir) and traps EXIT to call stop_all.

started_pids=()

# SIGTERM, then SIGKILL after 5 s: OpenCode's server does not stop on SIGTERM.
terminate() {  # pid
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do
    case $(ps -o stat= -p "$1" 2>/dev/null) in "" | Z*) break ;; esac  # gone, or a zombie
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

stop_all() {
  local pid
  for pid in "${started_pids[@]}"; do terminate "$pid"; done
  started_pids=()
}

stop_pid() {  # pid: stop one server started here
  terminate "$1"
  local kept=() pid
  for pid in "${started_pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  started_pids=("${kept[@]}")
}

# A loopback port nothing listens on now (a server that loses the race fails to start; the
# callers retry).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

wait_for_port() {  # port pid: wait up to 20 s until something accepts on the port
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Starts the gateway (binary and flags as arguments, --bind on a free loopback port added) with
# its log in $work/gateway.log; sets gateway_pid and gateway_port. A prefix such as
# `taskset -c 0` goes in GATEWAY_PREFIX. The port is chosen here rather than read from the log,
# which --log-level warn silences.
start_gateway() {
  for _ in 1 2 3; do
    gateway_port=$(free_port)
    # shellcheck disable=SC2086
    ${GATEWAY_PREFIX:-} "$@" --bind "127.0.0.1:$gateway_port" >"$work/gateway.log" 2>&1 &
    gateway_pid=$!
    started_pids+=("$gateway_pid")
    wait_for_port "$gateway_port" "$gateway_pid" && return 0
    stop_pid "$gateway_pid"
  done
  echo "the gateway did not start listening:" >&2
  cat "$work/gateway.log" >&2
  return 1
}

# Opens a session on the gateway at $gateway_port for workspace $1 and prints its id. Extra
# arguments go to curl (an Authorization header, say).
open_bench_session() {
  local workspace=$1
  shift
  curl -sf "$@" -H 'Content-Type: application/json' -d "{\"workspace_id\":\"$workspace\"}" \
    "http://127.0.0.1:$gateway_port/gateway/external-coding-agent/sessions" |
    sed -E 's/.*"session_id":"([^"]+)".*/\1/'
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
spread() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%d–%d", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "–" }'; }

# A JSON number field from one line of JSON: json_field KEY <<< LINE
json_field() { sed -n -E "s/.*\"$1\":(-?[0-9.]+).*/\1/p"; }

machine_description() {
  local cpu memory
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  memory=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  echo "$(nproc) cores ($cpu), $memory RAM, Linux $(uname -r)"
}

# The collapsed block of raw result lines that ends every generated section (stdin or FILE).
raw_results() {
  printf '<details><summary>Raw results</summary>\n\n```text\n'
  cat "${1:--}"
  printf '```\n\n</details>\n'
}
