//! ALB security policies (`ssl_policy`) as rustls can offer them: protocol versions, cipher
//! suites in ALB's order and key-exchange groups, and the reason a policy rustls cannot honour
//! is refused, with the nearest one that it can.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, NamedGroup, SupportedProtocolVersion};

use super::{cipher_name, group_name};

/// One ALB security policy as certgate serves it.
#[derive(Debug, PartialEq, Eq)]
pub struct SslPolicy {
    pub name: &'static str,
    /// TLS 1.3 first.
    versions: &'static [&'static SupportedProtocolVersion],
    /// ALB's order; the server's order decides (`ignore_client_order`), as on ALB.
    suites: &'static [CipherSuite],
    /// The post-quantum hybrids first in the `-PQ-` policies; rustls picks the first group of
    /// the client's list that the policy has, so a client that prefers a hybrid gets it.
    groups: &'static [NamedGroup],
    /// ALB suites of this policy that rustls does not implement (CBC), left out.
    pub omitted: &'static [&'static str],
}

pub const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09";

const TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS13_12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

const SUITES_13: [CipherSuite; 3] = [
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
];
/// ALB's ECDHE AES-GCM suites for TLS 1.2, in ALB's order.
const SUITES_12: [CipherSuite; 4] = [
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];
const SUITES_13_12: [CipherSuite; 7] = [
    SUITES_13[0],
    SUITES_13[1],
    SUITES_13[2],
    SUITES_12[0],
    SUITES_12[1],
    SUITES_12[2],
    SUITES_12[3],
];

const CLASSICAL: &[NamedGroup] = &[
    NamedGroup::X25519,
    NamedGroup::secp256r1,
    NamedGroup::secp384r1,
];
const PQ: &[NamedGroup] = &[
    NamedGroup::X25519MLKEM768,
    NamedGroup::secp256r1MLKEM768,
    NamedGroup::X25519,
    NamedGroup::secp256r1,
    NamedGroup::secp384r1,
];

/// The four ECDHE CBC suites of ALB's non-restricted TLS 1.2 policies.
const CBC_SHA2: &[&str] = &[
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
];

const fn policy(
    name: &'static str,
    versions: &'static [&'static SupportedProtocolVersion],
    suites: &'static [CipherSuite],
    groups: &'static [NamedGroup],
    omitted: &'static [&'static str],
) -> SslPolicy {
    SslPolicy {
        name,
        versions,
        suites,
        groups,
        omitted,
    }
}

/// Every policy certgate serves, the default first.
pub static POLICIES: [SslPolicy; 7] = [
    policy(DEFAULT_SSL_POLICY, TLS13_12, &SUITES_13_12, PQ, &[]),
    policy(
        "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
        TLS13_12,
        &SUITES_13_12,
        PQ,
        CBC_SHA2,
    ),
    policy(
        "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
        TLS13_ONLY,
        &SUITES_13,
        PQ,
        &[],
    ),
    policy(
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        TLS13_12,
        &SUITES_13_12,
        CLASSICAL,
        &[],
    ),
    policy(
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        TLS13_12,
        &SUITES_13_12,
        CLASSICAL,
        CBC_SHA2,
    ),
    policy(
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
        TLS13_ONLY,
        &SUITES_13,
        CLASSICAL,
        &[],
    ),
    policy(
        "ELBSecurityPolicy-FS-1-2-Res-2020-10",
        TLS12_ONLY,
        &SUITES_12,
        CLASSICAL,
        &[],
    ),
];

/// ALB policies certgate refuses, with the nearest one it serves.
pub const LEGACY: &[(&str, &str)] = &[
    (
        "ELBSecurityPolicy-2016-08",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-2015-05",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-TLS-1-0-2015-04",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-TLS-1-1-2017-01",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-FS-2018-06",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-FS-1-1-2019-08",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-TLS13-1-0-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-TLS13-1-1-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        "ELBSecurityPolicy-TLS13-1-0-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
    ),
    (
        "ELBSecurityPolicy-TLS13-1-1-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
    ),
    (
        "ELBSecurityPolicy-TLS13-1-2-Ext1-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
    ),
    (
        "ELBSecurityPolicy-TLS13-1-2-Ext2-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
    ),
    (
        "ELBSecurityPolicy-TLS-1-2-2017-01",
        "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    ),
    (
        "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
        "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    ),
    (
        "ELBSecurityPolicy-FS-1-2-2019-08",
        "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    ),
    (
        "ELBSecurityPolicy-FS-1-2-Res-2019-08",
        "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    ),
];

impl SslPolicy {
    /// The policy named `name`; the error says why it is refused and what to use instead.
    pub fn by_name(name: &str) -> Result<&'static SslPolicy, String> {
        if let Some(p) = POLICIES.iter().find(|p| p.name == name) {
            return Ok(p);
        }
        if let Some((_, nearest)) = LEGACY.iter().find(|(n, _)| *n == name) {
            return Err(format!(
                "{name:?} needs TLS 1.0/1.1, CBC or static-RSA cipher suites, which certgate \
                 (rustls) does not offer; the nearest supported policy is {nearest:?}"
            ));
        }
        if name.contains("FIPS") {
            return Err(format!(
                "{name:?} is a FIPS policy: it needs aws-lc-rs's FIPS module, which this build \
                 of certgate does not include; the nearest supported policy is {:?} (same \
                 protocols and suites, not FIPS-validated)",
                nearest_to_fips(name)
            ));
        }
        let known: Vec<&str> = POLICIES.iter().map(|p| p.name).collect();
        Err(format!(
            "{name:?} is not a known policy (supported: {})",
            known.join(", ")
        ))
    }

    pub fn default_policy() -> &'static SslPolicy {
        &POLICIES[0]
    }

    pub fn versions(&self) -> &'static [&'static SupportedProtocolVersion] {
        self.versions
    }

    /// A provider offering exactly this policy's suites and groups, in its order.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let base = aws_lc_rs::default_provider();
        let cipher_suites = self
            .suites
            .iter()
            .filter_map(|s| {
                aws_lc_rs::ALL_CIPHER_SUITES
                    .iter()
                    .find(|c| c.suite() == *s)
                    .copied()
            })
            .collect();
        let kx_groups = self.groups.iter().filter_map(|g| kx(*g)).collect();
        Arc::new(CryptoProvider {
            cipher_suites,
            kx_groups,
            ..base
        })
    }

    /// `TLSv1.3, TLSv1.2`, as `check` prints them.
    pub fn protocol_names(&self) -> Vec<&'static str> {
        self.versions
            .iter()
            .map(|v| super::protocol_name(v.version))
            .collect()
    }

    /// OpenSSL names, in the policy's order.
    pub fn suite_names(&self) -> Vec<&'static str> {
        self.suites.iter().map(|s| cipher_name(*s)).collect()
    }

    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| group_name(*g)).collect()
    }
}

fn kx(g: NamedGroup) -> Option<&'static dyn SupportedKxGroup> {
    [
        kx_group::X25519MLKEM768,
        kx_group::SECP256R1MLKEM768,
        kx_group::X25519,
        kx_group::SECP256R1,
        kx_group::SECP384R1,
    ]
    .into_iter()
    .find(|k| k.name() == g)
}

/// The served policy with a FIPS policy's protocols: by its TLS floor and PQ-ness.
fn nearest_to_fips(name: &str) -> &'static str {
    let pq = name.contains("-PQ-");
    let pick =
        |pq_name: &'static str, classical: &'static str| if pq { pq_name } else { classical };
    if name.contains("TLS13-1-3") {
        pick(
            "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
            "ELBSecurityPolicy-TLS13-1-3-2021-06",
        )
    } else if name.contains("-Res-") {
        pick(
            DEFAULT_SSL_POLICY,
            "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        )
    } else {
        pick(
            "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
            "ELBSecurityPolicy-TLS13-1-2-2021-06",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_offers_all_its_suites_and_groups() {
        for p in &POLICIES {
            let provider = p.provider();
            assert_eq!(provider.cipher_suites.len(), p.suites.len(), "{}", p.name);
            assert_eq!(provider.kx_groups.len(), p.groups.len(), "{}", p.name);
            let order: Vec<CipherSuite> =
                provider.cipher_suites.iter().map(|s| s.suite()).collect();
            assert_eq!(order, p.suites, "{}", p.name);
        }
    }

    #[test]
    fn pq_policies_offer_the_hybrid_first() {
        for p in POLICIES.iter().filter(|p| p.name.contains("-PQ-")) {
            assert_eq!(p.group_names()[0], "X25519MLKEM768", "{}", p.name);
        }
        assert_eq!(SslPolicy::default_policy().name, DEFAULT_SSL_POLICY);
    }

    #[test]
    fn refused_policies_name_a_served_one() {
        for (name, nearest) in LEGACY {
            let e = SslPolicy::by_name(name).unwrap_err();
            assert!(e.contains(nearest), "{e}");
            assert!(SslPolicy::by_name(nearest).is_ok(), "{nearest}");
        }
        let e = SslPolicy::by_name("ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04").unwrap_err();
        assert!(
            e.contains("FIPS") && e.contains("TLS13-1-2-Res-2021-06"),
            "{e}"
        );
        let e = SslPolicy::by_name("ELBSecurityPolicy-TLS13-1-3-FIPS-PQ-2025-09").unwrap_err();
        assert!(e.contains("ELBSecurityPolicy-TLS13-1-3-PQ-2025-09"), "{e}");
        let e = SslPolicy::by_name("modern").unwrap_err();
        assert!(
            e.contains("not a known policy") && e.contains(DEFAULT_SSL_POLICY),
            "{e}"
        );
    }
}
