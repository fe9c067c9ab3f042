//! The validated routes of a listener (SPEC §8): its `[[listener.rule]]`s, in order, each a host
//! and/or path condition and a target group, then its default group. First match wins.

use crate::wildcard::{strip_port, Pattern};

/// Where a listener sends requests: its rules in order, then its default group.
#[derive(Debug, Clone)]
pub struct Routes {
    pub rules: Vec<Rule>,
    pub default_target_group: String,
}

/// One `[[listener.rule]]`: its conditions and where matching requests go.
#[derive(Debug, Clone)]
pub struct Rule {
    pub host: Option<Pattern>,
    pub path: Option<Pattern>,
    pub target_group: String,
}

impl Rule {
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(h) = &self.host {
            match host {
                Some(host) if h.matches(strip_port(host)) => {}
                _ => return false,
            }
        }
        self.path.as_ref().is_none_or(|p| p.matches(path))
    }

    /// Whether this rule matches every request `later` matches, so that `later` never runs.
    pub fn shadows(&self, later: &Rule) -> bool {
        let part = |a: &Option<Pattern>, b: &Option<Pattern>| match (a, b) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.covers(b),
        };
        part(&self.host, &later.host) && part(&self.path, &later.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_ignore_case_and_port() {
        let h = Pattern::host("*.Example.com").unwrap();
        let rule = Rule {
            host: Some(h),
            path: None,
            target_group: "g".into(),
        };
        assert!(rule.matches(Some("API.example.COM:8443"), "/"));
        assert!(!rule.matches(Some("example.com"), "/"));
        assert!(!rule.matches(None, "/"));
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("a.example"), "a.example");
    }

    #[test]
    fn shadowing_is_detected_soundly() {
        let rule = |host: Option<&str>, path: Option<&str>| Rule {
            host: host.map(|h| Pattern::host(h).unwrap()),
            path: path.map(|p| Pattern::path(p).unwrap()),
            target_group: "g".into(),
        };
        assert!(rule(None, Some("/v1/*")).shadows(&rule(Some("a.example"), Some("/v1/x*"))));
        assert!(rule(Some("*.example"), None).shadows(&rule(Some("a.example"), Some("/"))));
        assert!(rule(None, Some("*")).shadows(&rule(None, Some("/anything"))));
        assert!(rule(None, Some("/a")).shadows(&rule(None, Some("/a"))));
        // Not covered: `?` is one character, `*` may be many.
        assert!(!rule(None, Some("/a?")).shadows(&rule(None, Some("/a*"))));
        assert!(!rule(Some("a.example"), None).shadows(&rule(None, Some("/"))));
        assert!(!rule(None, Some("/v1/*")).shadows(&rule(None, Some("/v2/*"))));
    }
}
