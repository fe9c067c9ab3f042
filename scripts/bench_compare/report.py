"""BENCHMARKS.md as scripts/bench-compare writes it: the machine, how each proxy was set up,
one table per scenario with medians and ratios to certgate, caveats, and the exact commands and
configurations. Sections after KEEP_MARK (other scripts' results) are kept."""

import os
import platform
import re
import shlex
import statistics
import time
from pathlib import Path

from . import peers as peer_defs
from .common import LOAD_CPU, PROXY_CPU, REPO, output

KEEP_MARK = "<!-- kept by scripts/bench-compare -->"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def get(result, *path):
    v = result
    for k in path:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


def fmt(v, spec=".0f", scale=1.0):
    return "–" if v is None else format(v * scale, spec)


def rate_table(results, names, labels, baseline=None, baseline_label="certgate"):
    """Markdown table of a rate scenario: medians over rounds and ratios to `baseline`."""
    rows = []
    base = med([r.get("rate") for r in results.get(baseline, [])]) if baseline else None
    base_cpu = med([get(r, "server", "cpu_us_per_op") for r in results.get(baseline, [])]) if baseline else None
    head = ["", "median /s", "rounds /s", "p50 ms", "p99 ms", "p99.9 ms", "errors",
            "server CPU", "CPU µs/op", "server RSS max MiB", "client CPU", f"CPU {LOAD_CPU} busy",
            f"other load on CPU {PROXY_CPU}"]
    if baseline:
        head.insert(2, f"{baseline_label} ÷ this")
        head.insert(10, f"CPU/op ÷ {baseline_label}")
    rows.append("| " + " | ".join(head) + " |")
    rows.append("|" + "---|" * len(head))
    for n in names:
        rs = results.get(n, [])
        if not rs:
            continue
        rate = med([r.get("rate") for r in rs])
        errs = sum((r.get("error_total") or 0) for r in rs)
        failed = sum(1 for r in rs if r.get("failed") or r.get("server_exited"))
        err_text = str(errs) + (f" ({failed} run(s) failed)" if failed else "")
        if errs:
            kinds = {}
            for r in rs:
                for k, v in (r.get("errors") or {}).items():
                    kinds[k] = kinds.get(k, 0) + v
            err_text += " (" + ", ".join(f"{k} {v}" for k, v in kinds.items() if v) + ")"
        row = [
            f"**{labels[n]}**",
            fmt(rate),
            " / ".join(fmt(r.get("rate")) for r in rs),
            fmt(med([get(r, "latency_us", "p50") for r in rs]), ".2f", 1e-3),
            fmt(med([get(r, "latency_us", "p99") for r in rs]), ".2f", 1e-3),
            fmt(med([get(r, "latency_us", "p999") for r in rs]), ".2f", 1e-3),
            err_text,
            server_cpu(med([get(r, "server", "cpu_util") for r in rs])),
            fmt(med([get(r, "server", "cpu_us_per_op") for r in rs]), ".1f"),
            fmt(med([get(r, "server", "rss_kib_max") for r in rs]), ".1f", 1 / 1024),
            fmt(med([r.get("client_cpu_util") for r in rs]), ".0f", 100) + " %",
            fmt(med([r.get("load_cpu_busy") for r in rs]), ".0f", 100) + " %",
            other_load(med([r.get("proxy_cpu_other") for r in rs])),
        ]
        if baseline:
            row.insert(2, "–" if n == baseline or not rate or base is None else f"{base / rate:.2f}")
            cpu = med([get(r, "server", "cpu_us_per_op") for r in rs])
            row.insert(10, "–" if n == baseline or not cpu or not base_cpu else f"{cpu / base_cpu:.2f}")
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


def server_cpu(util):
    """The proxy's CPU share, marked when it was too low for the proxy to be the bottleneck."""
    if util is None:
        return "–"
    return f"{util * 100:.0f} %" + (" ⚠" if util < 0.9 else "")


def other_load(share):
    """CPU time on the proxy's CPU that was not the proxy's, marked when it disturbed the run."""
    if share is None:
        return "–"
    return f"{share * 100:.0f} %" + (" ⚠" if share > 0.1 else "")


def idle_table(results, names, labels):
    rows = ["| | KiB per idle connection (median) | rounds | connections held | server RSS before → after (MiB) | errors |",
            "|---|---|---|---|---|---|"]
    for n in names:
        rs = results.get(n, [])
        if not rs:
            continue
        per = [get(r, "server", "rss_kib_per_conn") for r in rs]
        rows.append("| " + " | ".join([
            f"**{labels[n]}**",
            fmt(med(per), ".1f"),
            " / ".join(fmt(v, ".1f") for v in per),
            " / ".join(f"{r.get('still_open', '–')}/{r.get('requested', '–')}" for r in rs),
            " / ".join(f"{fmt(get(r, 'server', 'rss_kib_before'), '.1f', 1 / 1024)} → {fmt(get(r, 'server', 'rss_kib_after'), '.1f', 1 / 1024)}" for r in rs),
            str(sum((r.get("error_total") or 0) for r in rs)),
        ]) + " |")
    return "\n".join(rows)


def machine(peers):
    lscpu = output(["lscpu"])
    model = re.search(r"Model name:\s*(.+)", lscpu)
    mem = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
    rev = output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 1048576, 1) if mem else None,
        "kernel": " ".join(platform.uname()[i] for i in (0, 2, 4)),
        "os": next((l.split("=", 1)[1].strip('"') for l in Path("/etc/os-release").read_text().splitlines()
                    if l.startswith("PRETTY_NAME=")), ""),
        "hypervisor": (re.search(r"Hypervisor vendor:\s*(.+)", lscpu) or [None, "none"])[1],
        "peers": peer_defs.versions(peers),
        "openssl": output(["openssl", "version"]),
        "rustc": output(["rustc", "--version"]),
        "certgate": f"{rev}{' (with uncommitted changes)' if dirty else ''}",
    }


def names(labels):
    """'a, b and c'."""
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def machine_section(m, peers):
    debian = [f"{peer_defs.LABELS[p]} {m['peers'][p]}" for p in peers if p in peer_defs.DEBIAN]
    wheels = [f"{peer_defs.LABELS[p]} {m['peers'][p]}" for p in peers if p in peer_defs.WHEELS]
    out = ["## Machine", "",
           f"- CPU: {m['cpu']}, {m['cpus']} CPUs (hypervisor: {m['hypervisor']}), {m['memory_gib']} GiB RAM",
           f"- OS: {m['os']}, kernel {m['kernel']}",
           f"- certgate {m['certgate']}, built with {m['rustc']} (release profile), rustls 0.23 + aws-lc-rs"]
    if debian:
        out.append(f"- {names(debian)}: Debian packages")
    if wheels:
        pkgs = ", ".join(f"`{peer_defs.WHEELS[p]}`" for p in peers if p in peer_defs.WHEELS)
        out.append(f"- {names(wheels)}: PyPI wheels ({pkgs}, `pip install`), the projects' own release builds")
    out += [f"- {m['openssl']} (CLI, used to write the CRLs)", ""]
    return out


def setup_table(configs, main, checks):
    """One row per proxy: its one worker, how resumption is off, its CRLs, what it forwards, and
    what the set-up check saw (tickets sent, the revoked client)."""
    rows = ["| proxy | one worker | session resumption off | CRLs | client-certificate and X-Forwarded-* headers "
            "| set-up check saw |", "|---|---|---|---|---|---|"]
    for n in main:
        px, c = configs[n], checks.get(n, {})
        seen = f"{c.get('tickets', '–')} TLS 1.3 ticket(s) per handshake; revoked client " + (
            "refused" if px.refuses_revoked else "**accepted** (no CRL support)")
        rows.append("| " + " | ".join([f"**{px.label}**", px.setup.get("workers", ""), px.setup.get("resumption", ""),
                                       px.setup.get("crl", ""), px.setup.get("headers", ""), seen]) + " |")
    return "\n".join(rows)


def setup_section(configs, main, checks):
    labels = [configs[n].label for n in main]
    return [
        "## Set-up",
        "",
        f"- The proxy under test runs alone on CPU {PROXY_CPU} (`taskset -c {PROXY_CPU}`) with one worker (table "
        "below); certgate has no worker setting: tokio sizes its runtime from the CPUs the process may use, "
        "and the script also sets `TOKIO_WORKER_THREADS=1`.",
        f"- The load generator (`examples/loadgen`, rustls client) and the backend (a separate nginx, one "
        f"worker, `return 200 \"ok\"` on 127.0.0.1:18080) share CPU {LOAD_CPU}.",
        f"- Same job for all {len(main)} ({names(labels)}): ECDSA P-256 server certificate; TLS 1.3 and "
        "HTTP/2 or HTTP/1.1 by ALPN on one listener; client chain P-256 (leaf + intermediate); verify "
        "against the same CA bundle (root + intermediate) and, where the proxy has CRL support, CRLs (one "
        "per CA, since OpenSSL checks every CA of the chain); forward the client-certificate facts (ALB's "
        "serial, issuer, subject, validity and leaf headers where the proxy can) plus "
        "X-Forwarded-For/-Proto/-Port to the backend over keep-alive connections; no session resumption; "
        "the client offers none either.",
        "",
        setup_table(configs, main, checks),
        "",
        "- TLS 1.3, X25519 key exchange (the client offers only X25519, so no HelloRetryRequest and no "
        "post-quantum hybrid), the cipher suite the client prefers (see the loadgen output).",
        "- The client does not verify the server certificate (`--insecure-skip-server-verify`) unless "
        "`--verify-server` is given: it keeps the client's share of a handshake (one ECDSA sign, one "
        "X25519) well below the proxy's (one sign, three verifications, one X25519), so on two CPUs the "
        "client is not what limits the proxy. The proxies do their full work either way.",
        "- certgate writes its connection log (one JSON line per connection) to /dev/null; the peers log "
        "nothing (no access log; warnings only). certgate pays for formatting its log line, the others pay nothing.",
        "- Before measuring, each proxy is checked (a misconfigured proxy never counts as fast): a good "
        "client gets 200 over HTTP/1.1 and HTTP/2; the backend receives the certificate headers the proxy "
        "can forward (the table's column) and X-Forwarded-For/-Proto/-Port; a client without a "
        "certificate gets no 2xx; the revoked client is refused where the proxy has CRLs, and for a proxy "
        "without (Caddy, Traefik) the check still sends it and expects it to be accepted; `openssl "
        "s_client` counts the TLS 1.3 tickets one handshake gets.",
        f"- *server CPU* is the proxy's CPU time (all its threads and processes, from /proc) over the "
        f"measured window divided by its length: near 100 % means the proxy was the bottleneck. *other "
        f"load on CPU {PROXY_CPU}* is CPU {PROXY_CPU}'s busy time not spent in the proxy (another process, "
        f"interrupts); if it is high, that run was disturbed. *client CPU* is the load generator's share "
        f"of a CPU and *CPU {LOAD_CPU} busy* everything on the load CPU (client, backend, anything else): "
        "when it nears 100 % while the proxy stays below, the load side limited that run, not the proxy. "
        "Latency is per connection (connect + handshake + request) in handshake mode and per request in "
        "keep-alive mode, from a log-linear histogram (<1 % error). *certgate ÷ this* is the rate "
        "ratio and *CPU/op ÷ certgate* the ratio of server CPU per operation: above 1, certgate is ahead.",
        "",
    ]


def scenario_sections(opts, results, main, labels):
    out = []
    titles = {
        "handshake-h1": ("Full mTLS handshakes per second (new connection per request, HTTP/1.1)",
                         f"concurrency {opts.conc_handshake}"),
        "keepalive-h1": ("Keep-alive requests per second, HTTP/1.1",
                         f"{opts.conc_keepalive} connections, one request in flight on each"),
        "keepalive-h2": ("Keep-alive requests per second, HTTP/2",
                         f"{opts.conc_keepalive} concurrent streams over {opts.h2_connections} connections"),
    }
    for sc in ["handshake-h1", "keepalive-h1", "keepalive-h2"]:
        if sc in results:
            title, detail = titles[sc]
            out += [f"## {title}", "", f"{detail}.", "",
                    rate_table(results[sc], main, labels, baseline="certgate"), ""]
    if "idle" in results:
        out += ["## Memory per idle mTLS connection", "",
                f"{opts.idle_conns} HTTP/1.1 keep-alive connections opened (full mTLS handshake and one "
                f"request each), then held for {opts.hold:g} s; the proxy's resident memory (all its "
                "processes) before and after, divided by the connections held.", "",
                idle_table(results["idle"], main, labels), ""]
    if "crl" in results:
        out += crl_section(opts, results["crl"], labels)
    return out


def crl_section(opts, r, labels):
    out = ["## certgate with a 1,000,000-entry CRL", "",
           f"Handshake rate (HTTP/1.1, concurrency {opts.conc_handshake}) of certgate with no CRL in "
           f"the trust store and with a CRL of {opts.crl_entries:,} revoked serials from the client's "
           "issuing CA (`openssl ca -gencrl`, DER) plus the root's CRL, alternating.", "",
           rate_table(r, ["certgate-nocrl", "certgate-1m"], labels, baseline="certgate-nocrl",
                      baseline_label="no CRL"), ""]
    big = r.get("certgate-1m", [])
    if big:
        out += [
            f"- Start-up to listening with the large CRL (process start, parse, signature check, "
            f"index): median {fmt(med([x.get('startup_s') for x in big]), '.2f')} s "
            f"(no CRL: {fmt(med([x.get('startup_s') for x in r.get('certgate-nocrl', [])]), '.2f')} s).",
            f"- Resident memory with the large CRL loaded, before load: median "
            f"{fmt(med([get(x, 'server', 'rss_kib_start') for x in big]), '.1f', 1 / 1024)} MiB; peak "
            f"since start (VmHWM, includes loading): "
            f"{fmt(med([get(x, 'server', 'hwm_kib') for x in big]), '.1f', 1 / 1024)} MiB.",
            "- Store build time alone: `cargo bench --bench truststore` (`truststore/build/1M`).", ""]
    return out


def caveats(main):
    out = [
        "## Caveats",
        "",
        "- ⚠ after *server CPU* marks a median below 90 %: the proxy was not saturated, so that rate "
        "is a lower bound set by the load side, not the proxy's capacity. ⚠ after *other load* marks "
        f"more than 10 % of CPU {PROXY_CPU} taken by something else during the runs (another "
        "process, interrupts): those figures are disturbed and the run should be repeated.",
        f"- Two CPUs only: the load generator and the backend share CPU {LOAD_CPU}. As the proxy gets "
        "faster the load side can become the limit; watch the *CPU busy* column.",
    ]
    if "nginx" in main or "haproxy" in main:
        out.append("- nginx and HAProxy are the distribution's packages, linked with OpenSSL 3.0, whose full "
                   "handshakes cost markedly more CPU than those of OpenSSL 1.1.1 or 3.2+; the handshake ratios "
                   "hold for these builds, not for every build of nginx or HAProxy.")
    if "caddy" in main or "traefik" in main:
        out.append("- Caddy and Traefik (Go) check no CRL, so their handshakes skip the revocation lookup "
                   "certgate, nginx, HAProxy and Envoy do; Traefik forwards the whole chain and Caddy no "
                   "validity, so their per-request header work differs from the others' a little. "
                   "`GOMAXPROCS=1` limits Go's threads running Go code, not the runtime's other threads; all "
                   "of them are pinned to the same CPU and counted.")
    out += [
        "- The load generator uses rustls, as certgate does; an independent re-measurement with other "
        "clients is planned.",
        "- nginx finishes the handshake with a refused certificate and answers 400 (the others abort it "
        "with an alert); nginx 1.22 also always lists its CA names in the CertificateRequest (HAProxy "
        "`no-ca-names`, certgate's default `advertise_trust_store_ca_names = \"off\"` send none). Neither "
        "affects the good-client figures much.",
        "- Memory per idle connection is a difference of resident set sizes: it includes allocator "
        "slack and buffers the proxy keeps per connection, and is measured over HTTP/1.1.",
        "",
    ]
    return out


def commands_section(results, configs, labels, invocation):
    out = ["## Exact commands", "", "```sh", invocation, "```", "",
           "One load-generator command per scenario and proxy (PIDs and paths from the last round):", "",
           "```sh"]
    for sc, per in results.items():
        for name, rs in per.items():
            if rs and rs[-1].get("command"):
                out.append(f"# {sc}, {labels[name]}")
                out.append(rs[-1]["command"])
    out += ["```", "", "Proxies were started as (pinned, from the work directory):", "", "```sh"]
    for px in configs.values():
        env = " ".join(f"{k}={v}" for k, v in px.env.items())
        out.append(f"{env + ' ' if env else ''}taskset -c {PROXY_CPU} " + " ".join(shlex.quote(str(c)) for c in px.cmd))
    out += ["```", "", "<details><summary>Configurations</summary>", ""]
    for name, px in configs.items():
        if name == "certgate-nocrl":
            continue
        for f in px.files:
            out += [f"`{f.name}`:", "", "```", f.read_text().rstrip(), "```", ""]
    out += ["</details>", ""]
    return out


def write_report(path, opts, m, results, configs, main, checks, invocation, timings):
    """Writes the report to `path`, keeping what follows KEEP_MARK in the file already there."""
    labels = {k: v.label for k, v in configs.items()}
    peers = [n for n in main if n != "certgate"]
    out = [f"# Benchmarks: {names([labels[n] for n in main])} terminating mTLS", ""]
    if opts.quick:
        out += ["> **Quick smoke run (`--quick`)**: runs of a few seconds, so these figures only show that",
                "> the harness works. Run `scripts/bench-compare` without `--quick` for numbers to quote.", ""]
    out += [
        f"Produced by `{invocation}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{opts.rounds} round(s) per scenario, runs alternating between the proxies "
        f"({' '.join(chr(65 + i) for i in range(len(main)))} {' '.join(chr(65 + i) for i in range(len(main)))} …), "
        f"each run on a freshly started proxy, {opts.warmup:g} s warm-up then "
        f"{opts.duration:g} s measured. Figures are medians over the rounds; every round's rate is listed.",
        "",
    ]
    out += machine_section(m, peers)
    out += setup_section(configs, main, checks)
    out += scenario_sections(opts, results, main, labels)
    out += caveats(main)
    out += commands_section(results, configs, labels, invocation)
    out += ["## Timings of this run", ""] + [f"- {k}: {v:.1f} s" for k, v in timings.items()] + [""]
    # Sections other scripts write (scripts/bench-policies, scripts/bench-features) follow KEEP_MARK and are kept.
    kept = ""
    if path.exists():
        old = path.read_text()
        if KEEP_MARK in old:
            kept = old[old.index(KEEP_MARK):]
    path.write_text("\n".join(out).replace(str(REPO) + "/", "") + kept)
