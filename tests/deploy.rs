//! The files in `deploy/`: the Prometheus alert rules parse (with promtool when installed) and
//! name only metrics certgate exports; the systemd unit, the Kubernetes manifests and the container
//! file pass their own tools (systemd-analyze, kubernetes-validate, hadolint, installed by
//! scripts/test); the unit's system-call filter admits every call certgate makes under strace.

use std::path::Path;
use std::process::Command;

const RULES: &str = "deploy/prometheus/certgate-alerts.yaml";

/// Metric names in certgate's exposition (SPEC §11), as the rules may use them.
const METRICS: &[&str] = &[
    "certgate_truststore_crl_next_update_timestamp_seconds",
    "certgate_server_certificate_not_after_timestamp_seconds",
];

#[test]
fn alert_rules_parse_and_use_exported_metrics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES);
    let text = std::fs::read_to_string(&path).unwrap();
    let exprs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect();
    assert_eq!(exprs.len(), 2, "{text}");
    for expr in &exprs {
        let names: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("certgate_"))
            .collect();
        assert!(!names.is_empty(), "{expr}");
        for n in names {
            assert!(METRICS.contains(&n), "{n} is not a certgate metric");
        }
    }
    assert!(exprs[0].ends_with("< 24 * 3600"), "{}", exprs[0]);
    assert!(exprs[1].ends_with("< 14 * 86400"), "{}", exprs[1]);
    match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("promtool not installed; rules checked by name only"),
    }
}

/// Runs a checking tool that scripts/test installs; its output when it fails (or, with
/// `quiet`, when it prints anything at all: `systemd-analyze verify` warns on stderr and still
/// exits 0).
fn run_tool(tool: &str, args: &[&std::ffi::OsStr], quiet: bool) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{tool} is not installed ({e}); scripts/test installs it"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    if quiet {
        assert!(text.trim().is_empty(), "{tool} {args:?} warned:\n{text}");
    }
    text
}

fn deploy_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit as installed, with its binary path pointed at the binary this build made (so the
/// verifier also checks that the command lines name an executable).
fn installable_unit(dir: &Path) -> std::path::PathBuf {
    let unit = deploy_file("deploy/systemd/certgate.service")
        .replace("/usr/local/bin/certgate", env!("CARGO_BIN_EXE_certgate"));
    let path = dir.join("certgate.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let text = deploy_file("deploy/systemd/certgate.service");
    for must in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=certgate",
    ] {
        assert!(text.lines().any(|l| l == must), "unit lacks {must}");
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = installable_unit(dir.path());
    run_tool(
        "systemd-analyze",
        &["verify".as_ref(), unit.as_os_str()],
        true,
    );
    // systemd's own exposure score, 0 (locked down) … 10 (unprotected), must stay at 2.0 or
    // below (the threshold is given in tenths).
    let report = run_tool(
        "systemd-analyze",
        &[
            "security".as_ref(),
            "--offline=yes".as_ref(),
            "--threshold=20".as_ref(),
            unit.as_os_str(),
        ],
        false,
    );
    assert!(report.contains("Overall exposure level"), "{report}");
}

const MANIFESTS: &[&str] = &[
    "00-namespace.yaml",
    "serviceaccount.yaml",
    "configmap.yaml",
    "secret.yaml",
    "deployment.yaml",
    "service.yaml",
    "poddisruptionbudget.yaml",
];

#[test]
fn kubernetes_manifests_validate_against_the_schema() {
    let paths: Vec<std::ffi::OsString> = MANIFESTS
        .iter()
        .map(|m| format!("deploy/kubernetes/{m}").into())
        .collect();
    let listed: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    for f in &listed {
        assert!(MANIFESTS.contains(&f.as_str()), "{f} is not checked here");
    }
    let mut args: Vec<&std::ffi::OsStr> = vec!["--strict".as_ref(), "--quiet".as_ref()];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    run_tool("kubernetes-validate", &args, true);

    let d = deploy_file("deploy/kubernetes/deployment.yaml");
    for must in [
        "replicas: 3",
        "topologyKey: topology.kubernetes.io/zone",
        "path: /readyz",
        "path: /healthz",
        "port: admin",
        "containerPort: 9901",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "serviceAccountName: certgate",
        "secretName: certgate-server-tls",
        "name: certgate-config",
    ] {
        assert!(d.contains(must), "deployment lacks {must}");
    }
    let sa = deploy_file("deploy/kubernetes/serviceaccount.yaml");
    assert!(sa.contains("eks.amazonaws.com/role-arn:"), "{sa}");
    let pdb = deploy_file("deploy/kubernetes/poddisruptionbudget.yaml");
    assert!(pdb.contains("minAvailable: 2"), "{pdb}");
}

/// The TOML inside the ConfigMap is a config certgate accepts, its admin port is the one the
/// probes use, and its shutdown delay fits in the pod's grace period.
#[test]
fn configmap_holds_a_valid_certgate_config() {
    let cm = deploy_file("deploy/kubernetes/configmap.yaml");
    let mut lines = cm.lines().skip_while(|l| l.trim() != "certgate.toml: |");
    lines.next().unwrap();
    let toml: String = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    std::fs::write(tls.join("tls.crt"), "").unwrap();
    std::fs::write(tls.join("tls.key"), "").unwrap();
    let toml = toml.replace("/etc/certgate/tls/", &format!("{}/", tls.display()));
    let cfg = certgate::config::from_str(&toml, Path::new("certgate.toml"), dir.path())
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    // Both logs go to S3 from the spool volume the Deployment mounts.
    let spool = Path::new("/var/spool/certgate");
    for log in [Some(&cfg.connection_log), cfg.access_log.as_ref()] {
        let s3 = log.and_then(|l| l.s3.as_ref()).expect("S3 delivery");
        assert!(
            s3.spool_dir.starts_with(spool),
            "{}",
            s3.spool_dir.display()
        );
    }
    let d = deploy_file("deploy/kubernetes/deployment.yaml");
    assert!(
        d.contains("mountPath: /var/spool/certgate"),
        "no spool volume"
    );
    let admin = cfg.admin.expect("[admin] in the ConfigMap");
    assert_eq!(admin.bind.port(), 9901);
    let grace: u64 = d
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds: "))
        .unwrap()
        .parse()
        .unwrap();
    // The delay, then at most 30 s of draining.
    assert!(admin.shutdown_delay.as_secs() + 30 < grace, "grace {grace}");
}

#[test]
fn container_file_passes_hadolint_and_runs_unprivileged() {
    run_tool(
        "hadolint",
        &[
            "--failure-threshold".as_ref(),
            "info".as_ref(),
            "deploy/container/Dockerfile".as_ref(),
        ],
        true,
    );
    let text = deploy_file("deploy/container/Dockerfile");
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage build expected");
    let last_user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !last_user.starts_with("0") && !last_user.starts_with("root"),
        "{last_user}"
    );
    assert!(
        text.contains("--profile dist"),
        "the image ships the dist build"
    );
    let cargo = deploy_file("Cargo.toml");
    let dist = cargo
        .split("[profile.dist]")
        .nth(1)
        .expect("[profile.dist]");
    assert!(dist.contains("strip = \"debuginfo\""), "{dist}");
    assert!(dist.contains("split-debuginfo = \"packed\""), "{dist}");
    build_stage_has_every_source(&text);
    builder_is_new_enough(&text);
}

/// The builder image's Rust is at least what every locked dependency declares it needs
/// (`cargo metadata`, offline).
fn builder_is_new_enough(dockerfile: &str) {
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("a rust: build stage");
    let version = |v: &str| -> Vec<u64> {
        v.split(['.', '-', ' '])
            .take(3)
            .map_while(|p| p.parse().ok())
            .collect()
    };
    let builder = version(image);
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in meta["packages"].as_array().unwrap() {
        if let Some(need) = p["rust_version"].as_str() {
            assert!(
                version(need) <= builder,
                "{} needs Rust {need}; the build stage has {image}",
                p["name"]
            );
        }
    }
}

/// No container runtime here, so the build stage's inputs are checked instead: the manifest,
/// the lock file, every target path Cargo.toml names, and every file the sources compile in
/// (`include_str!`/`include_bytes!` outside unit tests) are copied into it.
fn build_stage_has_every_source(dockerfile: &str) {
    let copied: Vec<String> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let is_copied = |path: &str| {
        copied
            .iter()
            .any(|c| path == c || path.starts_with(&format!("{c}/")))
    };
    for need in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "benches/headers.rs",
    ] {
        assert!(is_copied(need), "{need} is not copied into the build stage");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = deploy_file("Cargo.toml");
    for line in cargo.lines() {
        if let Some(p) = line.strip_prefix("path = \"") {
            let p = p.trim_end_matches('"');
            assert!(
                is_copied(p),
                "{p} (Cargo.toml) is not copied into the build stage"
            );
        }
    }
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // Unit tests' fixtures are not part of the build.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let parts = ["include_str!(\"", "include_bytes!(\""]
                .into_iter()
                .flat_map(|m| text.split(m).skip(1));
            for part in parts {
                let Some((rel, _)) = part.split_once('"') else {
                    continue;
                };
                let file = path.parent().unwrap().join(rel);
                let file = file
                    .canonicalize()
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let rel = file.strip_prefix(root.canonicalize().unwrap()).unwrap();
                let rel = rel.to_string_lossy();
                assert!(
                    is_copied(&rel),
                    "{rel} (compiled in by {}) is not copied into the build stage",
                    path.display()
                );
            }
        }
    }
}

/// The syscalls named by `systemd-analyze syscall-filter GROUP`, groups expanded.
fn syscall_group(name: &str, out: &mut std::collections::BTreeSet<String>) {
    let text = run_tool(
        "systemd-analyze",
        &["syscall-filter".as_ref(), name.as_ref()],
        false,
    );
    for word in text.lines().map(str::trim) {
        if word.is_empty() || word.starts_with('#') || word == name {
            continue;
        }
        if word.starts_with('@') {
            syscall_group(word, out);
        } else {
            out.insert(word.to_string());
        }
    }
}

/// The unit's system-call filter cannot be tried without systemd as init, so certgate runs
/// under strace instead (the demo: a verify-mode handshake, a proxied request to the echo
/// backend, the connection log, SIGTERM and drain), and every system call it made must be one
/// the unit allows and does not deny.
#[test]
fn the_units_syscall_filter_allows_what_certgate_calls() {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};
    let unit = deploy_file("deploy/systemd/certgate.service");
    let (mut allowed, mut denied) = (BTreeSet::new(), BTreeSet::new());
    for value in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (set, groups) = match value.strip_prefix('~') {
            Some(rest) => (&mut denied, rest),
            None => (&mut allowed, value),
        };
        for g in groups.split_whitespace() {
            syscall_group(g, set);
        }
    }
    assert!(
        allowed.contains("read") && denied.contains("setrlimit"),
        "{allowed:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_certgate"))
        .args(["demo", "--bind", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("strace is not installed ({e}); scripts/test installs it"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "certgate demo never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("truststores/demo");
    let curl = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(demo.join("root-ca.pem"))
        .arg("--cert")
        .arg(demo.join("good-client.pem"))
        .arg("--key")
        .arg(demo.join("good-client.key"))
        .arg(format!("https://127.0.0.1:{port}/hello"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "200");
    // SIGTERM to certgate (strace's child), then strace ends with it.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id())).unwrap();
    let pid = children.split_whitespace().next().expect("certgate's pid");
    assert!(Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while strace.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
            let _ = strace.kill();
            panic!("certgate did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&trace).unwrap();
    let used: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|call| call.split_once('(').map(|(name, _)| name))
        .filter(|name| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .collect();
    assert!(
        used.contains("accept4") || used.contains("accept"),
        "{used:?}"
    );
    for call in &used {
        assert!(
            allowed.contains(*call) && !denied.contains(*call),
            "certgate calls {call}, which the unit's SystemCallFilter refuses"
        );
    }
}
