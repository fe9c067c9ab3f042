//! Validation of `[listener.client_identity]` (SPEC §9): which certificate field names the
//! client, with `san_type`/`san_index` only beside `subject_alternative_name`, and a header name
//! that is no other header certgate owns. Verify listeners only: an unverified certificate
//! names nobody.

use http::HeaderName;

use super::problems::Problems;
use crate::config::file::{ClientIdentityFile, IdentityFromFile, SanTypeFile};
use crate::config::model::{ClientIdentityConfig, HeaderNames, Mode};
use crate::x509::{IdentityField, SanKind};

/// The listener's identity settings; `None` when absent or wrong (reported).
pub(super) fn client_identity(
    key: &str,
    f: Option<&ClientIdentityFile>,
    mode: Mode,
    headers: &HeaderNames,
    p: &mut Problems,
) -> Option<ClientIdentityConfig> {
    let f = f?;
    let key = format!("{key}.client_identity");
    if mode != Mode::Verify {
        p.push(
            &key,
            format!(
                "only allowed when mutual_authentication.mode = \"verify\" (mode is {:?}): \
                 an unverified certificate does not say who the client is",
                mode.as_str()
            ),
        );
    }
    let field = field(&key, f, p);
    let header = header(&key, f.header_name.as_deref(), headers, p);
    Some(ClientIdentityConfig {
        field: field?,
        header: header.ok()?,
    })
}

fn field(key: &str, f: &ClientIdentityFile, p: &mut Problems) -> Option<IdentityField> {
    let from = *p.required(&format!("{key}.from"), f.from.as_ref())?;
    if from != IdentityFromFile::SubjectAlternativeName {
        for (attr, given) in [
            ("san_type", f.san_type.is_some()),
            ("san_index", f.san_index.is_some()),
        ] {
            if given {
                p.push(
                    &format!("{key}.{attr}"),
                    "only allowed with from = \"subject_alternative_name\"",
                );
            }
        }
    }
    match from {
        IdentityFromFile::DistinguishedName => Some(IdentityField::DistinguishedName),
        IdentityFromFile::CommonName => Some(IdentityField::CommonName),
        IdentityFromFile::SubjectAlternativeName => {
            let kind = p.required(&format!("{key}.san_type"), f.san_type.as_ref());
            let index = san_index(key, f.san_index, p);
            Some(IdentityField::SubjectAltName {
                kind: san_kind(*kind?),
                index: index?,
            })
        }
    }
}

fn san_kind(t: SanTypeFile) -> SanKind {
    match t {
        SanTypeFile::Dns => SanKind::Dns,
        SanTypeFile::Ip => SanKind::Ip,
        SanTypeFile::Email => SanKind::Email,
        SanTypeFile::Uri => SanKind::Uri,
        SanTypeFile::OtherName => SanKind::OtherName,
    }
}

/// Most SANs of one type a certificate of 16 KiB could hold, roughly; a larger index is a typo.
const MAX_SAN_INDEX: i64 = 1000;

fn san_index(key: &str, v: Option<i64>, p: &mut Problems) -> Option<usize> {
    let v = v.unwrap_or(0);
    if !(0..=MAX_SAN_INDEX).contains(&v) {
        p.push(
            &format!("{key}.san_index"),
            format!("{v} is out of range: a 0-based index, 0 to {MAX_SAN_INDEX}"),
        );
        return None;
    }
    usize::try_from(v).ok()
}

/// The identity header, if one is named: a valid name that no other owned header uses (any
/// spelling with `_` for `-` included, since backends may read both as one).
fn header(
    key: &str,
    name: Option<&str>,
    headers: &HeaderNames,
    p: &mut Problems,
) -> Result<Option<HeaderName>, ()> {
    let Some(name) = name else { return Ok(None) };
    let key = format!("{key}.header_name");
    let Ok(h) = HeaderName::from_bytes(name.as_bytes()) else {
        p.push(&key, format!("{name:?} is not a valid HTTP header name"));
        return Err(());
    };
    let folded = |n: &str| n.replace('_', "-");
    let clash = headers
        .strip_set()
        .into_iter()
        .map(|n| n.as_str().to_string())
        .chain(
            crate::config::model::RESERVED_HEADER_NAMES
                .iter()
                .map(|r| r.to_string()),
        )
        .find(|owned| folded(owned) == folded(h.as_str()));
    if let Some(owned) = clash {
        p.push(
            &key,
            format!("{name:?} collides with the header {owned:?} that certgate owns"),
        );
        return Err(());
    }
    Ok(Some(h))
}
