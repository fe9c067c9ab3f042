//! ALB's wildcard patterns for listener-rule conditions: `*` matches any run of characters, `?`
//! exactly one; compiled once at load, matched per request, and compared for shadowing.
//!
//! Path patterns are case-sensitive and see the path only (no query), as ALB's are. Host
//! patterns are case-insensitive and see the host without its port ([`strip_port`]).

/// Longest pattern ALB accepts.
pub const MAX_PATTERN_LEN: usize = 128;

/// Longest pattern on a client identity or an issuer DN: as long as the longest identity.
pub const MAX_TEXT_PATTERN_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Byte(u8),
    One,
    Any,
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    toks: Vec<Tok>,
    fold_case: bool,
}

impl Pattern {
    /// A path pattern: must start with `/` (or be `*`).
    pub fn path(p: &str) -> Result<Pattern, String> {
        check_len(p)?;
        if !(p.starts_with('/') || p.starts_with('*')) {
            return Err(format!("{p:?}: a path pattern starts with \"/\""));
        }
        if let Some(c) = p.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{p:?}: {c:?} cannot appear in a path"));
        }
        Ok(Pattern::compile(p, false))
    }

    /// A host pattern: letters, digits, `-`, `.`, and the wildcards.
    pub fn host(h: &str) -> Result<Pattern, String> {
        check_len(h)?;
        if let Some(c) = h
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '?')))
        {
            return Err(format!(
                "{h:?}: {c:?} cannot appear in a host name (give it without port)"
            ));
        }
        Ok(Pattern::compile(&h.to_ascii_lowercase(), true))
    }

    /// A case-sensitive pattern on any text without control characters: client identities and
    /// issuer DNs (which certgate escapes to printable ASCII).
    pub fn text(p: &str) -> Result<Pattern, String> {
        if p.is_empty() {
            return Err("is empty".to_string());
        }
        if p.len() > MAX_TEXT_PATTERN_LEN {
            return Err(format!(
                "{p:?} is longer than {MAX_TEXT_PATTERN_LEN} characters"
            ));
        }
        if let Some(c) = p.chars().find(|c| c.is_control()) {
            return Err(format!("{p:?}: {c:?} cannot appear in a pattern"));
        }
        Ok(Pattern::compile(p, false))
    }

    fn compile(p: &str, fold_case: bool) -> Pattern {
        let mut toks = Vec::with_capacity(p.len());
        for b in p.bytes() {
            let t = match b {
                b'*' => Tok::Any,
                b'?' => Tok::One,
                b => Tok::Byte(b),
            };
            // `**` matches what `*` matches.
            if !(t == Tok::Any && toks.last() == Some(&Tok::Any)) {
                toks.push(t);
            }
        }
        Pattern {
            source: p.to_string(),
            toks,
            fold_case,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &str) -> bool {
        let eq = |t: &Tok, b: u8| match t {
            Tok::Byte(x) if self.fold_case => x.eq_ignore_ascii_case(&b),
            Tok::Byte(x) => *x == b,
            Tok::One => true,
            Tok::Any => false,
        };
        glob(&self.toks, s.as_bytes(), eq)
    }

    /// Whether every string `other` matches is also matched by `self` (a sufficient test:
    /// `other`'s wildcards are treated as characters that only `*`, or `?` for `?`, covers).
    pub fn covers(&self, other: &Pattern) -> bool {
        let cover = |t: &Tok, o: Tok| match (t, o) {
            (Tok::Byte(x), Tok::Byte(y)) => *x == y,
            (Tok::One, Tok::Byte(_) | Tok::One) => true,
            _ => false,
        };
        glob(&self.toks, &other.toks, cover)
    }
}

fn check_len(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("is empty".to_string());
    }
    if p.len() > MAX_PATTERN_LEN {
        return Err(format!("{p:?} is longer than {MAX_PATTERN_LEN} characters"));
    }
    Ok(())
}

/// Wildcard match of `toks` against `input` with one-star backtracking (linear in practice,
/// at most `toks.len() * input.len()` steps).
fn glob<T: Copy>(toks: &[Tok], input: &[T], eq: impl Fn(&Tok, T) -> bool) -> bool {
    let (mut t, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < input.len() {
        match toks.get(t) {
            Some(Tok::Any) => {
                star = Some((t, i));
                t += 1;
            }
            Some(tok) if eq(tok, input[i]) => {
                t += 1;
                i += 1;
            }
            _ => match star {
                Some((st, si)) => {
                    t = st + 1;
                    i = si + 1;
                    star = Some((st, si + 1));
                }
                None => return false,
            },
        }
    }
    toks[t..].iter().all(|x| *x == Tok::Any)
}

/// `host:port` or `[v6]:port` to the host alone.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_wildcards_follow_alb() {
        let p = Pattern::path("/v1/*").unwrap();
        assert!(p.matches("/v1/"));
        assert!(p.matches("/v1/users/7"));
        assert!(!p.matches("/v1"));
        assert!(!p.matches("/V1/users"), "paths are case-sensitive");
        let q = Pattern::path("/img/??.png").unwrap();
        assert!(q.matches("/img/ab.png"));
        assert!(!q.matches("/img/abc.png"));
        let r = Pattern::path("*/report*.csv").unwrap();
        assert!(r.matches("/a/b/report-2026.csv"));
        assert!(!r.matches("/a/b/report-2026.csv.bak"));
        assert!(Pattern::path("/exact").unwrap().matches("/exact"));
        assert!(!Pattern::path("/exact").unwrap().matches("/exact/"));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(Pattern::path("v1/*").unwrap_err().contains("starts with"));
        assert!(Pattern::path(&format!("/{}", "a".repeat(200)))
            .unwrap_err()
            .contains("128"));
        assert!(Pattern::host("a.example:443").unwrap_err().contains("port"));
        assert!(Pattern::path("").is_err());
    }

    #[test]
    fn text_patterns_are_case_sensitive() {
        let p = Pattern::text("spiffe://corp/admin/*").unwrap();
        assert!(p.matches("spiffe://corp/admin/ops-1"));
        assert!(!p.matches("spiffe://CORP/admin/ops-1"));
        assert!(Pattern::text("CN=Corp Admin CA,*")
            .unwrap()
            .matches("CN=Corp Admin CA,O=Corp"));
        assert!(Pattern::text("a\u{7}b")
            .unwrap_err()
            .contains("cannot appear"));
        assert!(Pattern::text("").is_err());
    }

    #[test]
    fn many_stars_stay_fast() {
        let p = Pattern::path(&format!("/{}b", "*a".repeat(60))).unwrap();
        let s = format!("/{}", "a".repeat(10_000));
        assert!(!p.matches(&s));
    }
}
