//! The shipped example configuration stays valid: it parses, its trust store loads, and its
//! listeners' TLS settings build.

#[test]
fn example_config_checks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certgate.toml");
    let cfg = certgate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.listeners.len(), 2);
    let sources = certgate::truststore::source::Sources::new(cfg.s3.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stores, _) = rt
        .block_on(certgate::truststore::loader::load_all(&cfg, &sources))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stores["demo"].revoked_entries(), 1);
    for l in &cfg.listeners {
        let certs = rt
            .block_on(certgate::tls::load_certificates(l, &sources))
            .unwrap_or_else(|e| panic!("{e}"));
        certgate::tls::ListenerTls::build(l, &stores, std::sync::Arc::new(certs))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn target_group_example_checks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/target-groups.toml");
    let cfg = certgate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let l = &cfg.listeners[0];
    assert_eq!(
        l.routes.default_action,
        certgate::config::RuleAction::Forward {
            target_group: "app".into()
        }
    );
    assert_eq!(l.routes.rules.len(), 1);
    assert_eq!(cfg.target_groups["app"].targets.len(), 2);
    assert!(!cfg.target_groups["api"].health_check.enabled);
}

#[test]
fn committed_demo_pki_matches_what_the_binary_embeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("truststores/demo");
    for (name, contents) in certgate::demo::EMBEDDED {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(on_disk, contents, "{name}");
        assert!(contents.contains("-----BEGIN"), "{name} is empty");
    }
    assert_eq!(certgate::demo::EMBEDDED.len(), certgate::pki::FILES.len());
}
