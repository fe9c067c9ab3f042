//! Who a client is, read from its certificate the way RabbitMQ's `ssl_cert_login_from` reads it:
//! the subject DN, the last common name, or the n-th subject alternative name of one type.
//! Every identity is ASCII-safe (escaped as the DN headers are) and bounded in size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::der_parser::asn1_rs::{Any, FromDer, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{parse_x509_certificate, X509Certificate};

use super::names::{decode_string, push_hex_byte, rfc2253};

/// Longest identity, in bytes once escaped; a longer field gives no identity. Backends put it in
/// a header (8 KiB in total on some), logs in every line.
pub const MAX_IDENTITY_BYTES: usize = 1024;

/// The part of the certificate that names the client (`[listener.client_identity] from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityField {
    /// The subject in RFC 2253 form, as the Subject header carries it.
    DistinguishedName,
    /// The last CN of the subject.
    CommonName,
    /// The `index`-th (0-based) subject alternative name of type `kind`.
    SubjectAltName { kind: SanKind, index: usize },
}

/// Subject alternative name types (`san_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    Dns,
    Ip,
    Email,
    Uri,
    OtherName,
}

impl SanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SanKind::Dns => "dns",
            SanKind::Ip => "ip",
            SanKind::Email => "email",
            SanKind::Uri => "uri",
            SanKind::OtherName => "other_name",
        }
    }
}

/// What a connection knows of its client's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Identity {
    /// The listener takes no identity, or the client sent no certificate.
    #[default]
    NotTaken,
    Found(String),
    /// The certificate lacks the configured field (or it is unusable); why, in words.
    Missing(String),
}

impl Identity {
    pub fn value(&self) -> Option<&str> {
        match self {
            Identity::Found(v) => Some(v),
            _ => None,
        }
    }

    /// Why there is no identity, when the listener asked for one.
    pub fn missing(&self) -> Option<&str> {
        match self {
            Identity::Missing(why) => Some(why),
            _ => None,
        }
    }
}

/// The identity in `field` of the DER certificate `der`.
pub fn identity_of(der: &[u8], field: IdentityField) -> Identity {
    match parse_x509_certificate(der) {
        Ok((_, cert)) => identity_in(&cert, field),
        Err(e) => Identity::Missing(format!("the client certificate does not parse: {e}")),
    }
}

/// The identity in `field` of a parsed certificate.
pub fn identity_in(cert: &X509Certificate<'_>, field: IdentityField) -> Identity {
    let found = match field {
        IdentityField::DistinguishedName => {
            let dn = rfc2253(cert.subject());
            if dn.is_empty() {
                Err("the client certificate has an empty subject".to_string())
            } else {
                Ok(dn)
            }
        }
        IdentityField::CommonName => common_name(cert),
        IdentityField::SubjectAltName { kind, index } => san(cert, kind, index),
    };
    match found {
        Ok(v) if v.len() > MAX_IDENTITY_BYTES => Identity::Missing(format!(
            "the identity is {} bytes, more than {MAX_IDENTITY_BYTES}",
            v.len()
        )),
        Ok(v) => Identity::Found(v),
        Err(why) => Identity::Missing(why),
    }
}

fn common_name(cert: &X509Certificate<'_>) -> Result<String, String> {
    let last = cert
        .subject()
        .iter_common_name()
        .last()
        .ok_or("the client certificate's subject has no common name (CN)")?;
    let text = decode_string(last.attr_value())
        .ok_or("the common name (CN) of the client certificate is not a string")?;
    non_empty(escaped(text.as_bytes()), "the common name (CN)")
}

fn non_empty(v: String, what: &str) -> Result<String, String> {
    if v.is_empty() {
        Err(format!("{what} of the client certificate is empty"))
    } else {
        Ok(v)
    }
}

fn san(cert: &X509Certificate<'_>, kind: SanKind, index: usize) -> Result<String, String> {
    let names = match cert.subject_alternative_name() {
        Ok(Some(ext)) => &ext.value.general_names,
        Ok(None) => return Err("the client certificate has no subject alternative names".into()),
        Err(e) => return Err(format!("the subject alternative names do not parse: {e}")),
    };
    let of_kind: Vec<&GeneralName<'_>> = names.iter().filter(|n| is_kind(n, kind)).collect();
    let Some(name) = of_kind.get(index) else {
        return Err(format!(
            "the client certificate has {} {} SAN(s); san_index {index} asks for one more",
            of_kind.len(),
            kind.as_str(),
        ));
    };
    let what = format!("{} SAN #{index}", kind.as_str());
    let text = match name {
        GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
            escaped(s.as_bytes())
        }
        GeneralName::IPAddress(bytes) => ip_text(bytes).ok_or(format!(
            "{what} is {} bytes, not an IPv4 or IPv6 address",
            bytes.len()
        ))?,
        GeneralName::OtherName(_, value) => {
            other_name_text(value).ok_or(format!("{what} does not hold a UTF-8 string value"))?
        }
        _ => return Err(format!("{what} is unusable")),
    };
    non_empty(text, &what)
}

fn is_kind(name: &GeneralName<'_>, kind: SanKind) -> bool {
    matches!(
        (name, kind),
        (GeneralName::DNSName(_), SanKind::Dns)
            | (GeneralName::IPAddress(_), SanKind::Ip)
            | (GeneralName::RFC822Name(_), SanKind::Email)
            | (GeneralName::URI(_), SanKind::Uri)
            | (GeneralName::OtherName(..), SanKind::OtherName)
    )
}

/// The canonical text of an IP SAN: dotted IPv4, RFC 5952 IPv6.
fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(ip.to_string())
}

/// An otherName's value (`[0] EXPLICIT`), when it is a UTF8String.
fn other_name_text(value: &[u8]) -> Option<String> {
    let (_, explicit) = Any::from_der(value).ok()?;
    let (_, inner) = Any::from_der(explicit.data).ok()?;
    if inner.tag() != Tag::Utf8String {
        return None;
    }
    let text = std::str::from_utf8(inner.data).ok()?;
    Some(escaped(text.as_bytes()))
}

/// `\` as `\\`, control bytes and bytes beyond ASCII as `\XX`, the rest as is: what the DN
/// headers do, so an identity is always a legal header value and never ambiguous.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x00..=0x1F | 0x7F..=0xFF => {
                out.push('\\');
                push_hex_byte(&mut out, b);
            }
            _ => out.push(char::from(b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_header_cannot_carry() {
        assert_eq!(escaped("ops-1".as_bytes()), "ops-1");
        assert_eq!(escaped("a\\b\r\n".as_bytes()), "a\\\\b\\0D\\0A");
        assert_eq!(escaped("Zoë".as_bytes()), "Zo\\C3\\AB");
    }

    #[test]
    fn ip_sans_in_canonical_form() {
        assert_eq!(ip_text(&[10, 0, 0, 7]).as_deref(), Some("10.0.0.7"));
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[2] = 0x0d;
        v6[3] = 0xb8;
        v6[15] = 1;
        assert_eq!(ip_text(&v6).as_deref(), Some("2001:db8::1"));
        assert_eq!(ip_text(&[1, 2, 3]), None);
    }

    #[test]
    fn other_names_only_as_utf8_strings() {
        // [0] { UTF8String "svc" }
        assert_eq!(
            other_name_text(&[0xA0, 5, 0x0C, 3, b's', b'v', b'c']).as_deref(),
            Some("svc")
        );
        // [0] { INTEGER 5 }
        assert_eq!(other_name_text(&[0xA0, 3, 0x02, 1, 5]), None);
        assert_eq!(other_name_text(&[0xA0]), None);
    }
}
