//! Caller identity: the verified client certificate's `urn:cadrex:system:` SAN URI, turned into a `Principal`.

use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use crate::domain::agency::Agency;
use crate::domain::division;
use crate::error::Error;

/// A calling system, read only from its verified certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `urn:cadrex:system:{agency}:{division}:{system}`
    pub uri: String,
    pub agency: Agency,
    pub division: String,
    pub system: String,
    /// Lowercase hex SHA-256 of the leaf certificate's DER.
    pub fingerprint: String,
    /// Lowercase hex of the certificate serial number (big-endian, no leading zero bytes).
    pub serial: String,
    /// Certificate expiry, unix seconds.
    pub not_after: i64,
}

impl Principal {
    /// True when this principal and another are the same agency and division ("own").
    pub fn same_body(&self, agency: Agency, division: &str) -> bool {
        self.agency == agency && self.division == division
    }
}

const URI_PREFIX: &str = "urn:cadrex:system:";

/// Parses `urn:cadrex:system:{agency}:{division}:{system}`.
pub fn parse_uri(uri: &str) -> Result<(Agency, String, String), String> {
    let rest = uri
        .strip_prefix(URI_PREFIX)
        .ok_or_else(|| format!("URI {uri:?} is not a cadrex system URI"))?;
    let mut parts = rest.split(':');
    let (Some(agency), Some(div), Some(system), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "URI {uri:?} does not have agency, division and system"
        ));
    };
    let agency = Agency::parse(agency).ok_or_else(|| format!("unknown agency {agency:?}"))?;
    if !division::is_valid(div) {
        return Err(format!("division {div:?} is not a 6-digit code"));
    }
    let system_ok = !system.is_empty()
        && system.len() <= 63
        && system
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !system_ok {
        return Err(format!(
            "system name {system:?} is not a short lowercase name"
        ));
    }
    Ok((agency, div.to_string(), system.to_string()))
}

/// Reads the principal from a leaf certificate that the TLS layer has already
/// verified against the CA. Exactly one `urn:cadrex:system:` SAN URI is required;
/// the subject CN is ignored on purpose.
pub fn principal_from_der(der: &[u8]) -> Result<Principal, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(u) = name
                && u.starts_with(URI_PREFIX)
            {
                uris.push(u.to_string());
            }
        }
    }
    let uri = match uris.as_slice() {
        [one] => one.clone(),
        [] => return Err("certificate has no urn:cadrex:system URI SAN".into()),
        _ => {
            return Err(format!(
                "certificate has {} urn:cadrex:system URI SANs",
                uris.len()
            ));
        }
    };
    let (agency, division, system) = parse_uri(&uri)?;
    Ok(Principal {
        uri,
        agency,
        division,
        system,
        fingerprint: hex::encode(Sha256::digest(der)),
        serial: serial_hex(cert.raw_serial()),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Normalised hex of a DER serial number: leading zero bytes dropped, so the same
/// serial compares equal whether it came from a certificate or a CRL entry.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start..])
}

/// The principal the identity layer put into the request, or UNAUTHENTICATED.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, Error> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Error::Unauthenticated("no verified client identity".into()))
}

/// Metadata key naming the person a system acts for.
pub const OFFICER_KEY: &str = "x-cadrex-officer";
/// Characters an officer's name may have, like any other name.
const OFFICER_MAX: usize = 64;

/// The `x-cadrex-officer` metadata: the person a system acts for, recorded in
/// the access log and never used for authorization. Metadata is ASCII, so the
/// value is UTF-8 percent-encoded (RFC 3986) on the wire; it is decoded here and
/// checked like a name. Absent or empty is no officer; a value that does not
/// decode, is not UTF-8, is too long or holds control or bidirectional override
/// characters is INVALID_ARGUMENT on the metadata key, rather than logged as
/// something else than what the client sent.
pub fn officer<T>(request: &tonic::Request<T>) -> Result<String, Error> {
    match request.metadata().get(OFFICER_KEY) {
        None => Ok(String::new()),
        Some(v) => decode_officer(v.as_bytes()),
    }
}

/// Decodes and validates one `x-cadrex-officer` value (see [`officer`]).
pub fn decode_officer(raw: &[u8]) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid(OFFICER_KEY, why.to_string());
    // percent_decode passes a stray `%` through; RFC 3986 does not, and a
    // value that means two things to two parsers has no place in the log.
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).unwrap_or_default();
                if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(bad(
                        "bad percent-encoding: `%` must be followed by two hex digits",
                    ));
                }
                i += 3;
            }
            b' '..=b'~' => i += 1,
            _ => {
                return Err(bad(
                    "must be UTF-8 percent-encoded (RFC 3986) printable ASCII",
                ));
            }
        }
    }
    let decoded = percent_encoding::percent_decode(raw)
        .decode_utf8()
        .map_err(|_| bad("percent-encoded bytes are not UTF-8"))?;
    let name = decoded.trim();
    if let Some(fv) = crate::domain::label(OFFICER_KEY, name, OFFICER_MAX, false) {
        return Err(Error::InvalidArgument {
            violations: vec![fv],
        });
    }
    if crate::access_log::reserved(name) {
        return Err(bad("must not begin with a prefix the access log reserves"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let (a, d, s) = parse_uri("urn:cadrex:system:audit:360821:audit-mis").unwrap();
        assert_eq!(
            (a, d.as_str(), s.as_str()),
            (Agency::Audit, "360821", "audit-mis")
        );
        assert!(parse_uri("urn:cadrex:system:police:360821:x").is_err());
        assert!(parse_uri("urn:cadrex:system:audit:36082:x").is_err());
        assert!(parse_uri("urn:cadrex:system:audit:360821:X").is_err());
        assert!(parse_uri("urn:cadrex:system:audit:360821:x:y").is_err());
        assert_eq!(serial_hex(&[0, 0, 1, 2]), "0102");
    }

    #[test]
    fn officers_are_percent_encoded_names() {
        assert_eq!(decode_officer(b"%E5%BC%A0%E4%B8%89").unwrap(), "张三");
        assert_eq!(decode_officer(b"Li Si").unwrap(), "Li Si");
        assert_eq!(decode_officer(b"").unwrap(), "");
        for bad in [
            &b"%E5%BC"[..],
            b"%zz",
            b"50%",
            b"%FF",
            b"a%0Ab",
            b"%E2%80%AEx",
            b"\xe5\xbc\xa0",
        ] {
            assert!(decode_officer(bad).is_err(), "{bad:?}");
        }
        assert!(decode_officer("张".repeat(65).as_bytes()).is_err());
        let long: String = "%E5%BC%A0".repeat(65);
        assert!(decode_officer(long.as_bytes()).is_err(), "65 characters");
        assert!(decode_officer("%E5%BC%A0".repeat(64).as_bytes()).is_ok());
    }
}
