//! Validation: the file model (`file.rs`) to the model the proxy runs on (`model/`), reporting
//! every problem with its key path. The top level, [s3] and the logs are here; each other
//! section has a file, and `problems.rs` holds what they share.

mod actions;
mod admin;
mod certificates;
mod identity;
mod jwt;
mod listener;
mod logs;
mod plain;
mod problems;
mod redirect;
mod response_headers;
mod routes;
mod target_group;
mod trust_store;

use std::path::Path;

use super::file::{FileConfig, S3File};
use super::model::{Config, S3Settings};
use problems::Problems;

/// Turns the file model into the runtime model, or returns every problem found.
pub fn validate(cfg: FileConfig, base: &Path) -> Result<Config, Vec<String>> {
    let mut p = Problems::default();
    // In the order problems are reported; listeners refer to trust stores and groups.
    let trust_stores = trust_store::trust_stores(&cfg.trust_store, base, &mut p);
    let s3 = s3(cfg.s3.as_ref(), &mut p);
    let mut target_groups = target_group::target_groups(&cfg.target_group, base, &mut p);
    let jwt_validators = jwt::validators(&cfg.jwt_validation, base, &mut p);
    let mut cx = listener::Context::new(base, &trust_stores, &mut target_groups, &jwt_validators);
    let listeners = listener::listeners(&cfg.listener, &mut cx, &mut p);
    let connection_log = logs::connection_log(cfg.connection_log.as_ref(), &s3, base, &mut p);
    let access_log = logs::access_log(cfg.access_log.as_ref(), &s3, base, &mut p);
    let admin = admin::admin(cfg.admin.as_ref(), &listeners, &mut p);
    p.finish(Config {
        listeners,
        trust_stores,
        s3,
        target_groups,
        connection_log,
        access_log,
        jwt_validators,
        admin,
    })
}

fn s3(f: Option<&S3File>, p: &mut Problems) -> S3Settings {
    let mut s3 = S3Settings::default();
    let Some(f) = f else { return s3 };
    if let Some(url) = &f.endpoint_url {
        match url.parse::<http::Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                s3.endpoint_url = Some(url.clone());
            }
            _ => p.push(
                "s3.endpoint_url",
                format!("{url:?} is not an http:// or https:// URL"),
            ),
        }
    }
    s3.region = f.region.clone();
    s3.force_path_style = f.force_path_style.unwrap_or(false);
    s3
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn problems(toml: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        match crate::config::from_str(toml, Path::new("t.toml"), dir.path()) {
            Ok(_) => Vec::new(),
            Err(crate::config::ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let p = problems(
            r#"
            [[listener]]
            name = "web"
            bind = "nope"
            certificate_chain = "missing.pem"
            backend = "ftp://x"
            [listener.mutual_authentication]
            mode = "passthrough"
            ignore_client_certificate_expiry = true
            trust_store = "corp"
            "#,
        );
        let joined = p.join("\n");
        for want in [
            "listener[0] (web).bind: \"nope\" is not an IP:port address",
            "listener[0] (web).certificate_chain: ",
            "missing.pem",
            "listener[0] (web).private_key: is required",
            "listener[0] (web).backend: \"ftp://x\" must start with http://",
            "listener[0] (web).mutual_authentication.trust_store: only allowed when mode = \"verify\"",
            "listener[0] (web).mutual_authentication.ignore_client_certificate_expiry: only allowed",
        ] {
            assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let p = problems(
            "[[listener]]\nname = \"a\"\nbindd = \"1\"\n[listener.mutual_authentication]\nmod = \"verify\"\n[trust_store.x]\nca_bundle = \"b\"\n",
        );
        assert!(
            p.contains(&"listener[0].bindd: unknown key".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"listener[0].mutual_authentication.mod: unknown key".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"trust_store.x.ca_bundle: unknown key".to_string()),
            "{p:?}"
        );
        // ...and the other problems are still reported in the same run.
        assert!(
            p.iter()
                .any(|s| s.contains("listener[0] (a).bind: is required")),
            "{p:?}"
        );
    }

    #[test]
    fn s3_source_and_endpoint_problems_name_their_keys() {
        let p = problems(
            "[trust_store.t]\nca_certificates_bundle = \"s3://nokey\"\n[s3]\nendpoint_url = \"ftp://x\"\n",
        );
        assert!(
            p.iter()
                .any(|s| s.contains("trust_store.t.ca_certificates_bundle: \"s3://nokey\"")),
            "{p:?}"
        );
        assert!(p.iter().any(|s| s.contains("s3.endpoint_url")), "{p:?}");
    }

    #[test]
    fn verify_needs_a_defined_trust_store() {
        let p = problems(
            "[[listener]]\nname=\"a\"\nbind=\"127.0.0.1:1\"\n[listener.mutual_authentication]\nmode=\"verify\"\ntrust_store=\"x\"\n",
        );
        assert!(
            p.iter()
                .any(|s| s.contains("no [trust_store.x] is defined")),
            "{p:?}"
        );
    }
}
