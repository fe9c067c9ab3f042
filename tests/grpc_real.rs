//! gRPC through certgate with parts nobody here wrote (SPEC §14): Python's grpcio server with
//! its standard health service as the target (h2c), and grpcio's client over mTLS in front,
//! presenting the test PKI's client certificate. certgate's own gRPC health check asks the same
//! service.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use support::pki::*;
use support::*;

const SERVER: &str = r#"
import grpc
from concurrent import futures
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
h = health.HealthServicer()
h.set("", health_pb2.HealthCheckResponse.SERVING)
h.set("shop", health_pb2.HealthCheckResponse.NOT_SERVING)
health_pb2_grpc.add_HealthServicer_to_server(h, server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

const CLIENT: &str = r#"
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
addr, ca, cert, key = sys.argv[1:5]
read = lambda p: open(p, "rb").read() if p != "-" else None
creds = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
stub = health_pb2_grpc.HealthStub(grpc.secure_channel(addr, creds))
for svc in ["", "shop", "missing"]:
    try:
        r = stub.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5)
        print(svc or "-", health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
    except grpc.RpcError as e:
        print(svc or "-", e.code().name)
"#;

/// The Python gRPC server, stopped on drop.
struct GrpcServer(Child, u16);

impl GrpcServer {
    fn start(dir: &std::path::Path) -> GrpcServer {
        std::fs::write(dir.join("server.py"), SERVER).unwrap();
        let mut child = Command::new("python3")
            .arg(dir.join("server.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with grpcio (scripts/test installs it)");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("grpcio server did not start: {line:?}"));
        GrpcServer(child, port)
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(dir: &std::path::Path, port: u16, cert: Option<(&str, &str)>) -> String {
    std::fs::write(dir.join("client.py"), CLIENT).unwrap();
    let (cert, key) = cert.unwrap_or(("-", "-"));
    let out = Command::new("python3")
        .arg(dir.join("client.py"))
        .arg(format!("localhost:{port}"))
        .args(["server_ca.pem", cert, key])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpcio_client_reaches_a_grpcio_service_through_certgate_over_mtls() {
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let server = GrpcServer::start(work.path());
    let target = format!("127.0.0.1:{}", server.1);
    let section = format!(
        "[target_group.api]\ntargets = [\"http://{target}\"]\nprotocol_version = \"GRPC\"\n\
         [target_group.api.health_check]\ninterval_secs = 5\nhealthy_threshold = 2\n"
    );
    let proxy = Proxy::start_edited(
        &pki,
        target.parse().unwrap(),
        "mode = \"verify\"\ntrust_store = \"corp\"",
        &section,
        |t| {
            let start = t.find("backend =").unwrap();
            let end = start + t[start..].find('\n').unwrap();
            format!("{}default_target_group = \"api\"{}", &t[..start], &t[end..])
        },
    )
    .await;
    let dir = proxy.dir.path();
    write_pem(dir, "server_ca.pem", &pki.server_ca.pem);
    write_pem(dir, "client.pem", &pki.good.chain_pem(&[&pki.inter]));
    write_pem(dir, "client.key", &pki.good.key_pem);

    let answers = client(dir, proxy.addr.port(), Some(("client.pem", "client.key")));
    assert_eq!(answers, "- SERVING\nshop NOT_SERVING\nmissing NOT_FOUND\n");
    let access = proxy.access_records(3);
    assert!(
        access.iter().all(|r| r["elb_status_code"] == 200),
        "{access:?}"
    );
    assert_eq!(
        access[0]["leaf_client_cert_subject"], "CN=client",
        "{}",
        access[0]
    );

    // Without a client certificate the handshake is refused: grpcio reports UNAVAILABLE.
    let refused = client(dir, proxy.addr.port(), None);
    assert!(
        refused.lines().all(|l| l.ends_with("UNAVAILABLE")),
        "{refused}"
    );

    // The target's own stop: certgate answers trailers-only UNAVAILABLE (gRPC status 14).
    drop(server);
    let gone = client(dir, proxy.addr.port(), Some(("client.pem", "client.key")));
    assert!(gone.lines().all(|l| l.ends_with("UNAVAILABLE")), "{gone}");
}
