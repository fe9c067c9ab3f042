# Shared by scripts/bench-policies, scripts/bench-features and scripts/bench-h2-targets (sourced, not run): builds certgate
# and examples/loadgen, starts certgate pinned to CPU 0 with one worker, runs loadgen pinned to
# CPU 1 against it, and prints the Markdown table and the per-round ratios of the server's CPU
# time per operation. Every run appends one JSON line (loadgen --json) to $work/results.jsonl.
#
#   source scripts/bench-lib.sh
#   bench_setup                          # build; sets $certgate, $loadgen, $work (removed on exit)
#   bench_listener NAME PORT MODE [STORE] [EXTRA] # TOML of a fixed-200 listener
#   bench_start NAME CONFIG PORT...      # certgate on CPU 0; its pid in $started_pid
#   bench_run ROUND LABEL PID LOADGEN-ARGS...
#   bench_summary UNIT A/B/TITLE...      # table, then TITLE: A ÷ B server CPU per UNIT

bench_setup() {
  cargo build --quiet --release --bin certgate --example loadgen
  local target
  target=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  certgate="$target/release/certgate"
  loadgen="$target/release/examples/loadgen"
  work=$(mktemp -d)
  bench_pids=()
  trap bench_cleanup EXIT
  cat >"$work/progress.py" <<'PY'
import json, sys
r = json.load(sys.stdin)
kx = (r.get("tls") or {}).get("kx")
print(f"round {sys.argv[1]} {r['label']}: {r['rate']:.0f}/s, "
      f"{r['server']['cpu_us_per_op']:.1f} us server CPU per {r['mode']} op, kx {kx}, "
      f"{r.get('error_total', 0)} errors", file=sys.stderr)
PY
}

bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}

# Runs a command in the background and remembers its pid for the clean-up; the pid is in $!.
bench_spawn() {
  "$@" &
  bench_pids+=("$!")
}

# Ends a process bench_spawn started, and forgets it.
bench_stop() {
  local p rest=()
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${bench_pids[@]}"; do
    if [ "$p" != "$1" ]; then rest+=("$p"); fi
  done
  bench_pids=("${rest[@]}")
}

# bench_listener NAME PORT MODE [TRUST_STORE] [EXTRA]: the TOML of a listener on 127.0.0.1:PORT
# with the demo server certificate ($work/pki) and a fixed 200 (no backend); EXTRA holds more
# `[[listener]]` keys (one per line), TRUST_STORE is given for mode verify.
bench_listener() {
  cat <<EOF
[[listener]]
name = "$1"
bind = "127.0.0.1:$2"
certificate_chain = "pki/server.pem"
private_key = "pki/server.key"
${5:-}

[listener.default_action]
fixed_response = { status_code = 200, content_type = "text/plain", message_body = "ok" }

[listener.mutual_authentication]
mode = "$3"
EOF
  if [ -n "${4:-}" ]; then echo "trust_store = \"$4\""; fi
  echo
}

# Waits (at most 10 s each) until every port on 127.0.0.1 accepts a connection.
bench_wait_ports() {
  local port
  for port in "$@"; do
    for _ in $(seq 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
      sleep 0.1
    done
  done
}

# bench_start NAME CONFIG PORT...: certgate with CONFIG, one tokio worker on CPU 0, its log in
# $work/NAME.log; sets $started_pid once every PORT accepts.
bench_start() {
  local name=$1 config=$2
  shift 2
  bench_spawn env TOKIO_WORKER_THREADS=1 taskset -c 0 "$certgate" run -c "$config" \
    >"$work/$name.log" 2>&1
  started_pid=$!
  bench_wait_ports "$@"
  if ! kill -0 "$started_pid" 2>/dev/null; then
    cat "$work/$name.log" >&2
    echo "certgate ($name) did not start" >&2
    exit 1
  fi
}

# bench_run ROUND LABEL PID ARGS...: one loadgen run on CPU 1 measuring process PID, labelled
# LABEL; prints one progress line on stderr and stops the script if loadgen fails.
bench_run() {
  local round=$1 label=$2 pid=$3
  shift 3
  taskset -c 1 "$loadgen" --insecure-skip-server-verify --concurrency 32 \
    --duration "$seconds" --server-pid "$pid" --json --label "$label" "$@" \
    2>"$work/loadgen.err" >>"$work/results.jsonl" || {
    cat "$work/loadgen.err" >&2
    exit 1
  }
  tail -1 "$work/results.jsonl" | python3 "$work/progress.py" "$round"
}

# bench_summary UNIT A/B/TITLE...: the Markdown table of every label, then for each pair the
# ratio A ÷ B of the server CPU per UNIT, per round and as the median.
bench_summary() {
  python3 - "$work/results.jsonl" "$@" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
unit, pairs = sys.argv[2], [p.split("/", 2) for p in sys.argv[3:]]
by = {}
for r in runs:
    by.setdefault(r["label"], []).append(r)
def cpu(r): return r["server"]["cpu_us_per_op"]
def ci95(xs): return 1.96 * statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan")
print(f"| listener | key exchange | median {unit}s/s | rounds /s | median server CPU µs/{unit} | rounds µs | server CPU | errors |")
print("|---|---|---|---|---|---|---|---|")
for label, rs in by.items():
    kx = (rs[0].get("tls") or {}).get("kx", "?")
    rates = [r["rate"] for r in rs]
    cpus = [cpu(r) for r in rs]
    util = statistics.median(r["server"]["cpu_util"] for r in rs)
    errors = sum(r.get("error_total", 0) for r in rs)
    print(f"| {label} | {kx} | {statistics.median(rates):.0f} | {' / '.join(f'{x:.0f}' for x in rates)} "
          f"| {statistics.median(cpus):.1f} | {' / '.join(f'{x:.1f}' for x in cpus)} | {util*100:.0f} % | {errors} |")
print()
for a, b, title in pairs:
    ra, rb = by.get(a, []), by.get(b, [])
    ratios = [cpu(x) / cpu(y) for x, y in zip(ra, rb)]
    rate_ratios = [y["rate"] / x["rate"] for x, y in zip(ra, rb)]
    print(f"- {title}: {a} ÷ {b} server CPU per {unit}, per round "
          f"{' / '.join(f'{x:.3f}' for x in ratios)} (spread {min(ratios):.3f}–{max(ratios):.3f}), "
          f"median **{statistics.median(ratios):.3f}×**, mean {statistics.mean(ratios):.3f} "
          f"± {ci95(ratios):.3f} (95 % interval of the mean); {b} ÷ {a} rate median "
          f"{statistics.median(rate_ratios):.3f}×")
EOF
}
