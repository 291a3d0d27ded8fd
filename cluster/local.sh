#!/usr/bin/env bash
# A multi-node Ray cluster on this machine (loopback), for developing and testing ftray's cluster
# path: every node is a real raylet with its own resources; all ports bind to 127.0.0.1.
#
#   cluster/local.sh start [CPUS]        head + one worker node, CPUS each (default 1)
#   cluster/local.sh add-worker [CPUS]   one more worker node (prints its raylet's pid)
#   cluster/local.sh stop                stops this cluster's processes, and nothing else
#
# The head schedules work too. Submit with: ftray submit JOB.yaml --address http://127.0.0.1:8266
set -euo pipefail

DIR=${FTRAY_CLUSTER_DIR:-/tmp/ftray-cluster}
GCS_PORT=${FTRAY_CLUSTER_PORT:-6390}
DASHBOARD_PORT=${FTRAY_DASHBOARD_PORT:-8266}
RAY=${RAY:-ray}
# One auth mode for every node: `ray start --head` turns token auth on when ~/.ray/auth_token
# exists (a local ray.init() creates one) but a joining node does not. Loopback only, so off.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

# Whether any of these processes still runs (a zombie does not: nothing here may reap it).
running() { ps -o stat= -p "$(IFS=,; echo "$*")" 2>/dev/null | grep -qv '^Z'; }

# Each node on one machine needs its own agent ports. The dashboard agent's HTTP port is a fixed
# number by default; 0 lets each agent bind a free port itself and report it, as the other agent
# ports do unless set. (A port picked here and bound seconds later could be taken meanwhile.)
node_ports() {
  echo --dashboard-agent-listen-port=0
}

add_worker() {
  local cpus=${1:-1} before after
  before=$(pgrep -f "raylet.*$DIR" | sort || true)
  # shellcheck disable=SC2046
  "$RAY" start --address="127.0.0.1:$GCS_PORT" --node-ip-address=127.0.0.1 --num-cpus="$cpus" \
    $(node_ports) --disable-usage-stats >"$DIR/worker-$(date +%s%N).log" 2>&1
  after=$(pgrep -f "raylet.*$DIR" | sort || true)
  comm -13 <(echo "$before") <(echo "$after") | head -1
}

case "${1:-}" in
  start)
    mkdir -p "$DIR"
    # shellcheck disable=SC2046
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$GCS_PORT" --num-cpus="${2:-1}" \
      --temp-dir="$DIR" --include-dashboard=true --dashboard-host=127.0.0.1 \
      --dashboard-port="$DASHBOARD_PORT" $(node_ports) --disable-usage-stats >"$DIR/head.log" 2>&1
    add_worker "${2:-1}" >/dev/null
    echo "http://127.0.0.1:$DASHBOARD_PORT"
    ;;
  add-worker)
    add_worker "${2:-1}"
    ;;
  stop)
    # `ray stop` would stop every Ray on the machine; this cluster's processes name its directory,
    # except the agents each raylet starts (ray::DashboardAgent, ray::RuntimeEnvAgent), which
    # rename themselves: they are found as the raylets' children, or they outlive it by minutes.
    mapfile -t pids < <(pgrep -f "$DIR" || true)
    for pid in "${pids[@]}"; do mapfile -t -O "${#pids[@]}" pids < <(pgrep -P "$pid" || true); done
    [ "${#pids[@]}" -eq 0 ] && exit 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 20); do running "${pids[@]}" || exit 0; sleep 0.5; done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 start [CPUS] | add-worker [CPUS] | stop" >&2
    exit 2
    ;;
esac
