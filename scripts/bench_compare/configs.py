"""The configuration files bench-compare writes: the backend, and each peer doing the same
verify-mode job as certgate (same server certificate, CA bundle and CRLs where the peer has
them, client-certificate facts and X-Forwarded-* to the same backend over keep-alive
connections, no session resumption, TLS 1.3 and HTTP/2 by ALPN, one worker)."""

import json

from .common import BACKEND_PORT, fd_limit

PEER_PORTS = {"nginx": 18444, "haproxy": 18445, "envoy": 18448, "caddy": 18449, "traefik": 18450}

# What the backend's /__headers page echoes, by the name the set-up check uses.
ECHOED = {
    "subject": "x_amzn_mtls_clientcert_subject",
    "issuer": "x_amzn_mtls_clientcert_issuer",
    "serial": "x_amzn_mtls_clientcert_serial_number",
    "validity": "x_amzn_mtls_clientcert_validity",
    "leaf": "x_amzn_mtls_clientcert_leaf",
    "tls-client-cert": "x_forwarded_tls_client_cert",
    "tls-client-cert-info": "x_forwarded_tls_client_cert_info",
    "for": "x_forwarded_for",
    "proto": "x_forwarded_proto",
    "port": "x_forwarded_port",
}


def write(work, name, text):
    path = work / name
    path.write_text(text)
    return path


def nginx_common(work, name):
    tmp = work / f"{name}-tmp"
    tmp.mkdir(exist_ok=True)
    return f"""worker_processes 1;
daemon off;
master_process on;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
worker_rlimit_nofile {fd_limit()};
events {{ worker_connections {fd_limit() // 2}; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
"""


def backend(work):
    echo = "".join(f"{key}=$http_{var}\\n" for key, var in ECHOED.items())
    return write(work, "backend-nginx.conf", nginx_common(work, "backend") + f"""  server {{
    listen 127.0.0.1:{BACKEND_PORT} reuseport backlog=4096;
    location / {{ return 200 "ok\\n"; }}
    # What a proxy forwarded, for the set-up check.
    location = /__headers {{ return 200 "{echo}"; }}
  }}
}}
""")


def openssl_no_tickets(work):
    """OpenSSL configuration setting NumTickets = 0 for nginx and HAProxy: both turn tickets
    off for TLS 1.2, but OpenSSL 3.0 still sends TLS 1.3 tickets unless told so here."""
    return write(work, "openssl-no-tickets.cnf",
                 "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
                 "[ssl_sect]\nsystem_default = system_default_sect\n"
                 "[system_default_sect]\nNumTickets = 0\n")


def nginx(work, pki):
    return write(work, "nginx.conf", nginx_common(work, "nginx") + f"""  upstream backend {{
    server 127.0.0.1:{BACKEND_PORT};
    keepalive 256;
  }}
  server {{
    listen 127.0.0.1:{PEER_PORTS['nginx']} ssl http2 backlog=4096;
    ssl_certificate {pki}/server.pem;
    ssl_certificate_key {pki}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_verify_client on;
    ssl_verify_depth 3;
    ssl_client_certificate {pki}/ca-bundle.pem;
    ssl_crl {work}/crls.pem;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Amzn-Mtls-Clientcert-Leaf $ssl_client_escaped_cert;
      proxy_set_header X-Amzn-Mtls-Clientcert-Serial-Number $ssl_client_serial;
      proxy_set_header X-Amzn-Mtls-Clientcert-Issuer $ssl_client_i_dn;
      proxy_set_header X-Amzn-Mtls-Clientcert-Subject $ssl_client_s_dn;
      proxy_set_header X-Amzn-Mtls-Clientcert-Validity "NotBefore=$ssl_client_v_start;NotAfter=$ssl_client_v_end";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Port $server_port;
    }}
  }}
}}
""")


def haproxy(work, pki):
    return write(work, "haproxy.cfg", f"""# HAProxy under test (written by scripts/bench-compare)
global
  nbthread 1
  maxconn {fd_limit() // 2 - 100}
  tune.ssl.cachesize 0
  pidfile {work}/haproxy.pid

defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 75s
  timeout server 60s
  timeout http-request 60s
  timeout http-keep-alive 75s

frontend mtls
  bind 127.0.0.1:{PEER_PORTS['haproxy']} ssl crt {work}/haproxy-server.pem ca-file {pki}/ca-bundle.pem crl-file {work}/crls.pem verify required no-tls-tickets no-ca-names alpn h2,http/1.1
  option forwardfor
  http-request set-header X-Amzn-Mtls-Clientcert-Leaf %[ssl_c_der,base64]
  http-request set-header X-Amzn-Mtls-Clientcert-Serial-Number %[ssl_c_serial,hex]
  http-request set-header X-Amzn-Mtls-Clientcert-Issuer %[ssl_c_i_dn(,0,rfc2253)]
  http-request set-header X-Amzn-Mtls-Clientcert-Subject %[ssl_c_s_dn(,0,rfc2253)]
  http-request set-header X-Amzn-Mtls-Clientcert-Validity NotBefore=%[ssl_c_notbefore];NotAfter=%[ssl_c_notafter]
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Port %[dst_port]
  default_backend app

backend app
  http-reuse always
  server app 127.0.0.1:{BACKEND_PORT}
""")


def envoy(work, pki):
    """Envoy v3 bootstrap (JSON): the ALB headers from its %DOWNSTREAM_PEER_*% formatters, a
    client-sent x-forwarded-client-cert removed (SANITIZE), both CAs' CRLs checked."""
    iso = "(%Y-%m-%dT%H:%M:%SZ)"
    headers = {
        "X-Amzn-Mtls-Clientcert-Leaf": "%DOWNSTREAM_PEER_CERT%",
        "X-Amzn-Mtls-Clientcert-Serial-Number": "%DOWNSTREAM_PEER_SERIAL%",
        "X-Amzn-Mtls-Clientcert-Issuer": "%DOWNSTREAM_PEER_ISSUER%",
        "X-Amzn-Mtls-Clientcert-Subject": "%DOWNSTREAM_PEER_SUBJECT%",
        "X-Amzn-Mtls-Clientcert-Validity":
            f"NotBefore=%DOWNSTREAM_PEER_CERT_V_START{iso}%;NotAfter=%DOWNSTREAM_PEER_CERT_V_END{iso}%",
    }
    tls = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "disable_stateless_session_resumption": True,
        "disable_stateful_session_resumption": True,
        "common_tls_context": {
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificates": [{"certificate_chain": {"filename": f"{pki}/server.pem"},
                                  "private_key": {"filename": f"{pki}/server.key"}}],
            "validation_context": {"trusted_ca": {"filename": f"{pki}/ca-bundle.pem"},
                                   "crl": {"filename": f"{work}/crls.pem"},
                                   "only_verify_leaf_cert_crl": False},
        },
    }
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "mtls",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "append_x_forwarded_port": True,
        "generate_request_id": False,
        "forward_client_cert_details": "SANITIZE",
        "route_config": {"virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}],
            "request_headers_to_add": [{"header": {"key": k, "value": v},
                                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                                       for k, v in headers.items()],
        }]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            "suppress_envoy_headers": True}}],
    }
    conf = {"static_resources": {
        "listeners": [{
            "name": "mtls",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": PEER_PORTS["envoy"]}},
            "filter_chains": [{
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}],
            }],
        }],
        "clusters": [{
            "name": "backend", "type": "STATIC", "connect_timeout": "5s",
            "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": BACKEND_PORT}}}}]}]},
        }],
    }}
    return write(work, "envoy.json", json.dumps(conf, indent=1) + "\n")


def caddy(work, pki):
    """Caddy JSON: header_up placeholders for the facts Caddy has (no validity placeholder, the
    serial in decimal, the leaf as base64 DER), session tickets off, no admin endpoint."""
    client = "{http.request.tls.client."
    set_headers = {
        "X-Amzn-Mtls-Clientcert-Leaf": [client + "certificate_der_base64}"],
        "X-Amzn-Mtls-Clientcert-Serial-Number": [client + "serial}"],
        "X-Amzn-Mtls-Clientcert-Issuer": [client + "issuer}"],
        "X-Amzn-Mtls-Clientcert-Subject": [client + "subject}"],
        "X-Forwarded-Port": ["{http.request.port}"],
    }
    server = {
        "listen": [f"127.0.0.1:{PEER_PORTS['caddy']}"],
        "protocols": ["h1", "h2"],
        "automatic_https": {"disable": True},
        # Caddy turns strict SNI/Host matching on with client authentication; the load
        # generator sends SNI localhost and Host 127.0.0.1, as it does to every proxy.
        "strict_sni_host": False,
        "tls_connection_policies": [{
            "certificate_selection": {"any_tag": ["bench"]},
            "alpn": ["h2", "http/1.1"],
            "client_authentication": {"ca": {"provider": "file", "pem_files": [f"{pki}/ca-bundle.pem"]},
                                      "mode": "require_and_verify"},
        }],
        "routes": [{"handle": [{
            "handler": "reverse_proxy",
            "upstreams": [{"dial": f"127.0.0.1:{BACKEND_PORT}"}],
            "transport": {"protocol": "http", "keep_alive": {"max_idle_conns_per_host": 256}},
            "headers": {"request": {"set": set_headers}},
        }]}],
    }
    conf = {
        "admin": {"disabled": True},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {
            "tls": {"certificates": {"load_files": [{"certificate": f"{pki}/server.pem",
                                                     "key": f"{pki}/server.key", "tags": ["bench"]}]},
                    "session_tickets": {"disabled": True}},
            "http": {"servers": {"mtls": server}},
        },
    }
    return write(work, "caddy.json", json.dumps(conf, indent=1) + "\n")


def traefik(work, pki):
    """Traefik static and dynamic (file provider) configuration: the passTLSClientCert
    middleware (its own two headers), TLS options `default` with client auth and tickets off."""
    dynamic = write(work, "traefik-dynamic.yml", f"""# Traefik routes, TLS options (written by scripts/bench-compare)
http:
  routers:
    all:
      entryPoints: [mtls]
      rule: "PathPrefix(`/`)"
      service: backend
      middlewares: [clientcert]
      tls: {{}}
  middlewares:
    clientcert:
      passTLSClientCert:
        pem: true
        info:
          notAfter: true
          notBefore: true
          serialNumber: true
          subject: {{commonName: true, country: true, organization: true, organizationalUnit: true}}
          issuer: {{commonName: true, country: true, organization: true}}
  services:
    backend:
      loadBalancer:
        servers: [{{url: "http://127.0.0.1:{BACKEND_PORT}"}}]
tls:
  stores:
    default:
      defaultCertificate: {{certFile: {pki}/server.pem, keyFile: {pki}/server.key}}
  options:
    default:
      minVersion: VersionTLS12
      alpnProtocols: [h2, http/1.1]
      disableSessionTickets: true
      clientAuth:
        caFiles: [{pki}/ca-bundle.pem]
        clientAuthType: RequireAndVerifyClientCert
""")
    static = write(work, "traefik.yml", f"""# Traefik under test (written by scripts/bench-compare)
global: {{checkNewVersion: false, sendAnonymousUsage: false}}
log: {{level: ERROR}}
entryPoints:
  mtls:
    address: "127.0.0.1:{PEER_PORTS['traefik']}"
    transport:
      respondingTimeouts: {{idleTimeout: 75s}}
serversTransport:
  maxIdleConnsPerHost: 256
providers:
  file: {{filename: {dynamic}, watch: false}}
""")
    return static, dynamic
