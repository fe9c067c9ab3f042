//! The validated routes of a listener (SPEC §8, §9): its `[[listener.rule]]`s, in order, each with
//! conditions (host, path, client certificate) and one action, then its default group. First
//! match wins.

use super::RuleAction;
use crate::wildcard::{strip_port, Pattern};

/// Where a listener sends requests: its rules in order, then its default action.
#[derive(Debug, Clone)]
pub struct Routes {
    pub rules: Vec<Rule>,
    /// What runs when no rule matches: `backend`, `default_target_group` or
    /// `[listener.default_action]`.
    pub default_action: RuleAction,
}

/// One `[[listener.rule]]`: its conditions and its action.
#[derive(Debug, Clone)]
pub struct Rule {
    pub host: Option<Pattern>,
    pub path: Option<Pattern>,
    /// Patterns on the client's identity (`[listener.client_identity]`); one must match.
    pub client_identity: Option<Vec<Pattern>>,
    /// Patterns on the RFC 2253 issuer DN of the client's verified leaf; one must match.
    pub client_issuer: Option<Vec<Pattern>>,
    /// A `[jwt_validation.NAME]` the request must pass before the action runs.
    pub authenticate_jwt: Option<String>,
    pub action: RuleAction,
}

/// What rule conditions look at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub host: Option<&'a str>,
    pub path: &'a str,
    /// Facts of the client's certificate, only when it was verified against the trust store.
    pub cert: Option<CertFacts<'a>>,
}

/// The verified certificate's facts that rule conditions match.
#[derive(Debug, Clone, Copy)]
pub struct CertFacts<'a> {
    pub identity: Option<&'a str>,
    pub issuer: &'a str,
}

impl Rule {
    pub fn matches(&self, req: &RequestFacts<'_>) -> bool {
        if let Some(h) = &self.host {
            match req.host {
                Some(host) if h.matches(strip_port(host)) => {}
                _ => return false,
            }
        }
        if !self.path.as_ref().is_none_or(|p| p.matches(req.path)) {
            return false;
        }
        self.matches_cert(req.cert.as_ref())
    }

    /// The certificate conditions; a condition never matches a request without a verified
    /// certificate, nor an identity condition one without an identity.
    fn matches_cert(&self, cert: Option<&CertFacts<'_>>) -> bool {
        let any = |patterns: &[Pattern], value: Option<&str>| {
            value.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
        };
        if let Some(ids) = &self.client_identity {
            if !any(ids, cert.and_then(|c| c.identity)) {
                return false;
            }
        }
        self.client_issuer
            .as_ref()
            .is_none_or(|issuers| any(issuers, cert.map(|c| c.issuer)))
    }

    /// Whether the rule has a condition on the client certificate.
    pub fn has_cert_condition(&self) -> bool {
        self.client_identity.is_some() || self.client_issuer.is_some()
    }

    /// Whether this rule matches every request `later` matches, so that `later` never runs.
    pub fn shadows(&self, later: &Rule) -> bool {
        let part = |a: &Option<Pattern>, b: &Option<Pattern>| match (a, b) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.covers(b),
        };
        // Each of `later`'s patterns covered by one of ours.
        let list = |a: &Option<Vec<Pattern>>, b: &Option<Vec<Pattern>>| match (a, b) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b.iter().all(|pb| a.iter().any(|pa| pa.covers(pb))),
        };
        part(&self.host, &later.host)
            && part(&self.path, &later.path)
            && list(&self.client_identity, &later.client_identity)
            && list(&self.client_issuer, &later.client_issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(host: Option<&str>, path: Option<&str>) -> Rule {
        Rule {
            host: host.map(|h| Pattern::host(h).unwrap()),
            path: path.map(|p| Pattern::path(p).unwrap()),
            client_identity: None,
            client_issuer: None,
            authenticate_jwt: None,
            action: RuleAction::Forward {
                target_group: "g".into(),
            },
        }
    }

    fn texts(p: &[&str]) -> Option<Vec<Pattern>> {
        Some(p.iter().map(|p| Pattern::text(p).unwrap()).collect())
    }

    #[test]
    fn certificate_conditions_need_a_verified_certificate() {
        let admins = Rule {
            client_identity: texts(&["ops-*", "spiffe://corp/admin/*"]),
            ..rule(None, Some("/admin/*"))
        };
        let at = |cert| RequestFacts {
            host: None,
            path: "/admin/x",
            cert,
        };
        let cert = |identity| {
            Some(CertFacts {
                identity,
                issuer: "CN=Corp CA",
            })
        };
        assert!(admins.matches(&at(cert(Some("ops-1")))));
        assert!(admins.matches(&at(cert(Some("spiffe://corp/admin/a")))));
        assert!(!admins.matches(&at(cert(Some("dev-1")))));
        assert!(!admins.matches(&at(cert(None))), "no identity");
        assert!(!admins.matches(&at(None)), "no verified certificate");
        let by_issuer = Rule {
            client_issuer: texts(&["CN=Corp *"]),
            ..rule(None, None)
        };
        assert!(by_issuer.matches(&at(cert(None))));
        assert!(!by_issuer.matches(&at(None)));
    }

    #[test]
    fn certificate_conditions_take_part_in_shadowing() {
        let admins = Rule {
            client_identity: texts(&["ops-*"]),
            ..rule(None, Some("/admin/*"))
        };
        let everyone = rule(None, Some("/admin/*"));
        assert!(!admins.shadows(&everyone), "the fallback rule still runs");
        assert!(everyone.shadows(&admins));
        let narrower = Rule {
            client_identity: texts(&["ops-1", "ops-2?"]),
            ..rule(None, Some("/admin/*"))
        };
        assert!(admins.shadows(&narrower));
        let wider = Rule {
            client_identity: texts(&["ops-1", "dev-*"]),
            ..rule(None, Some("/admin/*"))
        };
        assert!(!admins.shadows(&wider));
    }

    #[test]
    fn host_patterns_ignore_case_and_port() {
        let h = Pattern::host("*.Example.com").unwrap();
        let rule = Rule {
            host: Some(h),
            ..rule(None, None)
        };
        let at = |host| RequestFacts {
            host,
            path: "/",
            cert: None,
        };
        assert!(rule.matches(&at(Some("API.example.COM:8443"))));
        assert!(!rule.matches(&at(Some("example.com"))));
        assert!(!rule.matches(&at(None)));
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("a.example"), "a.example");
    }

    #[test]
    fn shadowing_is_detected_soundly() {
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
