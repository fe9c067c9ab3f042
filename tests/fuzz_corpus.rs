//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and crash regressions
//! (`fuzz/regressions/<target>/`) through the same checks the cargo-fuzz targets run
//! (`fuzz/checks.rs`), so `cargo test` catches a regression without any fuzzing time.
//! Regressions are always replayed in full; corpus replay stops at a time budget per target.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../fuzz/checks.rs"]
mod checks;

/// Per target; the whole replay normally takes well under a second per target.
const CORPUS_BUDGET: Duration = Duration::from_secs(5);

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("no check named {target}"));
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let regressions = inputs(&fuzz.join("regressions").join(target));
    let corpus = inputs(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ is empty or missing"
    );

    let run = |path: &Path| {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: input {} fails its check", path.display());
        }
    };
    for path in &regressions {
        run(path);
    }
    let start = Instant::now();
    let mut replayed = 0;
    for path in &corpus {
        if start.elapsed() > CORPUS_BUDGET {
            break;
        }
        run(path);
        replayed += 1;
    }
    eprintln!(
        "{target}: replayed {} regression(s) and {replayed} of {} corpus inputs in {:?}",
        regressions.len(),
        corpus.len(),
        start.elapsed()
    );
}

#[test]
fn every_fuzz_target_has_a_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut targets: Vec<String> = inputs(&dir)
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    let mut checked: Vec<String> = checks::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    targets.sort();
    checked.sort();
    assert_eq!(
        targets, checked,
        "fuzz/fuzz_targets/ and checks::TARGETS differ"
    );
}

#[test]
fn dn_format() {
    replay("dn_format");
}

#[test]
fn leaf_facts() {
    replay("leaf_facts");
}

#[test]
fn url_pem() {
    replay("url_pem");
}

#[test]
fn config() {
    replay("config");
}

#[test]
fn bundle() {
    replay("bundle");
}

#[test]
fn crl() {
    replay("crl");
}

#[test]
fn server_hello() {
    replay("server_hello");
}
