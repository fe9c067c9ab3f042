//! The README's tables of TLS policies (served and refused) are the policy table of the code,
//! rendered: this test renders `certgate::crypto::policy` and compares, so the documentation
//! cannot drift from what certgate offers. On a mismatch it prints the block to paste.

use certgate::crypto::policy::{LEGACY, POLICIES};

const README: &str = include_str!("../README.md");

/// The lines between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in the README.
fn block(name: &str) -> &'static str {
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("<!-- {name}:end -->");
    let start = README
        .find(&begin)
        .unwrap_or_else(|| panic!("README has no {begin:?}"))
        + begin.len();
    let len = README[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("README has no {end:?}"));
    &README[start..start + len]
}

fn served_table() -> String {
    let mut out = String::from(
        "| `ssl_policy` | Protocols | Cipher suites, in the server's order | Key exchange, in order | ALB suites left out (CBC) |\n\
         |---|---|---|---|---|\n",
    );
    for (i, p) in POLICIES.iter().enumerate() {
        let code = |items: Vec<String>| {
            items
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let omitted = if p.omitted.is_empty() {
            "—".to_string()
        } else {
            code(p.omitted.iter().map(|s| s.to_string()).collect())
        };
        out.push_str(&format!(
            "| `{}`{} | {} | {} | {} | {omitted} |\n",
            p.name,
            if i == 0 { " (default)" } else { "" },
            p.protocol_names().join(", "),
            code(p.suite_names().iter().map(|s| s.to_string()).collect()),
            code(p.group_names()),
        ));
    }
    out
}

fn refused_table() -> String {
    let mut out = String::from("| Refused `ssl_policy` | Nearest supported policy |\n|---|---|\n");
    for (name, nearest) in LEGACY {
        out.push_str(&format!("| `{name}` | `{nearest}` |\n"));
    }
    out
}

#[test]
fn the_readme_policy_table_is_the_code_policy_table() {
    let want = served_table();
    assert!(
        block("ssl-policies") == want,
        "README's ssl-policies table differs from the code; it should read:\n{want}"
    );
}

#[test]
fn the_readme_lists_every_refused_legacy_policy_with_its_nearest() {
    let want = refused_table();
    assert!(
        block("ssl-policies-refused") == want,
        "README's ssl-policies-refused table differs from the code; it should read:\n{want}"
    );
}
