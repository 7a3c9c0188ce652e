//! From an indicator's artifact stub to one typed, normalized value, or a reason why not.
//!
//! Normalization makes equal things equal (so duplicates across profiles collapse into one STIX
//! indicator) and makes patterns match what sensors see: domains lower-case without the trailing
//! dot, IPs in canonical form (IPv4-mapped IPv6 becomes IPv4), hashes lower-case hex. Defanged
//! values (`hxxp://`, `[.]`) are refanged: defanged text never matches anything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ctiport_model::graph::Artifact;
use ctiport_model::record::ObservableType;

use crate::mappings::{ArtifactHandling, Mappings, UnclassifiedKind};

/// The outcome of classifying one artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classified {
    Value(ObservableType, String),
    /// Well-formed, but the stub carries nothing usable (reported, not an error).
    Skip(String),
    /// Malformed or unknown (reported; makes the run partial).
    Reject(String),
}

pub fn classify(artifact: &Artifact, mappings: &Mappings) -> Classified {
    if artifact.type_name.is_empty() {
        return Classified::Reject("artifact has no @odata.type".into());
    }
    let Some(handling) = mappings.artifact_handling(&artifact.type_name) else {
        return Classified::Reject(format!("unknown artifact type '{}'", artifact.type_name));
    };
    if let ArtifactHandling::Skip { reason } = handling {
        return Classified::Skip(reason.clone());
    }
    let raw = match handling {
        ArtifactHandling::Unclassified => artifact.value.as_deref().or(artifact.id.as_deref()),
        _ => artifact.id.as_deref(),
    };
    let Some(raw) = raw.map(str::trim).filter(|v| !v.is_empty()) else {
        return Classified::Reject(format!("{} artifact has no value", artifact.type_name));
    };
    let result = match handling {
        ArtifactHandling::Hostname => domain(raw),
        ArtifactHandling::Ip => ip_or_cidr(raw),
        ArtifactHandling::Host => ip_or_cidr(raw).or_else(|_| domain(raw)),
        ArtifactHandling::X509Sha1 => hash(raw, Some(40))
            .map(|(_, v)| (ObservableType::X509Sha1, v))
            .map_err(|_| {
                format!("sslCertificate id '{raw}' is not a SHA-1 fingerprint (40 hex digits)")
            }),
        ArtifactHandling::Unclassified => {
            let kind = artifact.kind.as_deref().unwrap_or_default();
            unclassified(mappings.unclassified_kind(kind), raw)
        }
        ArtifactHandling::Skip { .. } => unreachable_skip(),
    };
    match result {
        Ok((observable, value)) => Classified::Value(observable, value),
        Err(reason) => Classified::Reject(reason),
    }
}

fn unreachable_skip() -> Result<(ObservableType, String), String> {
    Err("internal: skip handled above".into())
}

type Typed = Result<(ObservableType, String), String>;

fn unclassified(kind: UnclassifiedKind, raw: &str) -> Typed {
    let hash_of = |len| hash(raw, Some(len));
    match kind {
        UnclassifiedKind::Url => url(raw),
        UnclassifiedKind::Md5 => hash_of(32),
        UnclassifiedKind::Sha1 => hash_of(40),
        UnclassifiedKind::Sha256 => hash_of(64),
        UnclassifiedKind::Sha512 => hash_of(128),
        UnclassifiedKind::Hash => hash(raw, None),
        UnclassifiedKind::Email => email(raw),
        UnclassifiedKind::Domain => domain(raw),
        UnclassifiedKind::Ip => ip_or_cidr(raw),
        UnclassifiedKind::Sniff => sniff(raw),
    }
}

/// Guesses the type of an unclassified value whose kind says nothing.
fn sniff(raw: &str) -> Typed {
    let refanged = refang(raw);
    if refanged.contains("://") {
        return url(raw);
    }
    if let Ok(typed) = hash(raw, None) {
        return Ok(typed);
    }
    if let Ok(typed) = ip_or_cidr(raw) {
        return Ok(typed);
    }
    if refanged.contains('@') {
        return email(raw);
    }
    domain(raw).map_err(|_| format!("cannot tell what the unclassified value '{raw}' is"))
}

/// Undoes the usual defanging: `hxxp`, `[.]`, `(.)`, `[dot]`, `[@]`, `[:]`.
pub fn refang(raw: &str) -> String {
    let mut text = raw.trim().to_owned();
    for (defanged, fanged) in [
        ("[.]", "."),
        ("(.)", "."),
        ("[dot]", "."),
        ("[@]", "@"),
        ("[:]", ":"),
        ("[://]", "://"),
    ] {
        text = text.replace(defanged, fanged);
    }
    let lower = text.to_ascii_lowercase();
    for (defanged, fanged) in [
        ("hxxps://", "https://"),
        ("hxxp://", "http://"),
        ("fxp://", "ftp://"),
    ] {
        if lower.starts_with(defanged) {
            text = format!("{fanged}{}", &text[defanged.len()..]);
        }
    }
    text
}

/// A lower-case hex digest; with `expected_len`, of exactly that length, else any known length.
fn hash(raw: &str, expected_len: Option<usize>) -> Typed {
    let value: String = raw
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let is_hex = !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit());
    let observable = match value.len() {
        32 => ObservableType::Md5,
        40 => ObservableType::Sha1,
        64 => ObservableType::Sha256,
        128 => ObservableType::Sha512,
        _ => {
            return Err(format!(
                "'{raw}' is not an MD5, SHA-1, SHA-256 or SHA-512 hex digest"
            ));
        }
    };
    match expected_len {
        _ if !is_hex => Err(format!("'{raw}' is not a hex digest")),
        Some(len) if len != value.len() => Err(format!(
            "'{raw}' has {} hex digits, expected {len}",
            value.len()
        )),
        _ => Ok((observable, value)),
    }
}

/// An IP address or CIDR range in canonical form.
pub fn ip_or_cidr(raw: &str) -> Typed {
    let text = refang(raw);
    let invalid = || format!("invalid IP address '{raw}'");
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.parse::<u8>().map_err(|_| invalid())?)),
        None => (text.as_str(), None),
    };
    let address = address.trim_start_matches('[').trim_end_matches(']');
    // A zone index (`fe80::1%eth0`) names an interface of the observer, not part of the address.
    let address = address.split('%').next().unwrap_or(address);
    let parsed: IpAddr = address.parse().map_err(|_| invalid())?;
    let parsed = match parsed {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let mapped_from_v6 = matches!(parsed, IpAddr::V4(_)) && address.contains(':');
    match (parsed, prefix) {
        (IpAddr::V4(v4), None) => Ok((ObservableType::Ipv4, v4.to_string())),
        (IpAddr::V6(v6), None) => Ok((ObservableType::Ipv6, v6.to_string())),
        (IpAddr::V4(v4), Some(bits)) => {
            let bits = if mapped_from_v6 {
                bits.checked_sub(96).ok_or_else(invalid)?
            } else {
                bits
            };
            cidr_v4(v4, bits).ok_or_else(invalid)
        }
        (IpAddr::V6(v6), Some(bits)) => cidr_v6(v6, bits).ok_or_else(invalid),
    }
}

/// A CIDR keeps its prefix; host bits are cleared so that `10.0.0.5/24` and `10.0.0.0/24` agree.
fn cidr_v4(address: Ipv4Addr, bits: u8) -> Option<(ObservableType, String)> {
    if bits > 32 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    let network = Ipv4Addr::from(u32::from(address) & mask);
    Some(if bits == 32 {
        (ObservableType::Ipv4, network.to_string())
    } else {
        (ObservableType::Ipv4Cidr, format!("{network}/{bits}"))
    })
}

fn cidr_v6(address: Ipv6Addr, bits: u8) -> Option<(ObservableType, String)> {
    if bits > 128 {
        return None;
    }
    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
    let network = Ipv6Addr::from(u128::from(address) & mask);
    Some(if bits == 128 {
        (ObservableType::Ipv6, network.to_string())
    } else {
        (ObservableType::Ipv6Cidr, format!("{network}/{bits}"))
    })
}

/// A host name: lower-cased, trailing dot removed, checked label by label.
pub fn domain(raw: &str) -> Typed {
    let text = refang(raw);
    let value = text.trim_end_matches('.').to_lowercase();
    let invalid = |why: &str| format!("invalid host name '{raw}': {why}");
    if value.is_empty() || value.len() > 253 {
        return Err(invalid("empty or longer than 253 characters"));
    }
    if ip_or_cidr(&value).is_ok() {
        return Err(invalid("it is an IP address"));
    }
    for label in value.split('.') {
        if label.is_empty() {
            return Err(invalid("empty label"));
        }
        if label.len() > 63 {
            return Err(invalid("label longer than 63 characters"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '*')))
        {
            return Err(invalid(&format!("character {bad:?} is not allowed")));
        }
    }
    Ok((ObservableType::Domain, value))
}

/// A URL: refanged, scheme and host lower-cased, everything after the host kept verbatim.
fn url(raw: &str) -> Typed {
    let text = refang(raw);
    let invalid = |why: &str| format!("invalid URL '{raw}': {why}");
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(invalid("no scheme"));
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(invalid("bad scheme"));
    }
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.is_empty() {
        return Err(invalid("no host"));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("control characters"));
    }
    Ok((
        ObservableType::Url,
        format!(
            "{}://{}{tail}",
            scheme.to_ascii_lowercase(),
            authority.to_lowercase()
        ),
    ))
}

/// An e-mail address; the domain part is lower-cased, the local part kept.
fn email(raw: &str) -> Typed {
    let text = refang(raw);
    let text = text.trim_start_matches("mailto:");
    let invalid = || format!("invalid e-mail address '{raw}'");
    let (local, host) = text.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    {
        return Err(invalid());
    }
    let (_, host) = domain(host).map_err(|_| invalid())?;
    if !host.contains('.') {
        return Err(invalid());
    }
    Ok((ObservableType::Email, format!("{local}@{host}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::mappings;
    use proptest::prelude::*;

    fn stub(
        type_name: &str,
        id: Option<&str>,
        kind: Option<&str>,
        value: Option<&str>,
    ) -> Artifact {
        Artifact {
            type_name: type_name.into(),
            id: id.map(Into::into),
            kind: kind.map(Into::into),
            value: value.map(Into::into),
        }
    }

    fn value_of(artifact: Artifact) -> Classified {
        classify(&artifact, &mappings())
    }

    fn ok(observable: ObservableType, value: &str) -> Classified {
        Classified::Value(observable, value.into())
    }

    #[test]
    fn normalizes_hostnames() {
        assert_eq!(
            value_of(stub("hostname", Some("EVIL.Example.COM."), None, None)),
            ok(ObservableType::Domain, "evil.example.com")
        );
        assert_eq!(
            value_of(stub("hostname", Some("MÜNCHEN.example"), None, None)),
            ok(ObservableType::Domain, "münchen.example")
        );
        assert!(matches!(
            value_of(stub("hostname", Some("bad host.example"), None, None)),
            Classified::Reject(_)
        ));
    }

    #[test]
    fn normalizes_ip_addresses_and_ranges() {
        for (raw, observable, expected) in [
            ("198.51.100.7", ObservableType::Ipv4, "198.51.100.7"),
            ("2001:DB8:0:0:0:0:0:1", ObservableType::Ipv6, "2001:db8::1"),
            ("::ffff:198.51.100.7", ObservableType::Ipv4, "198.51.100.7"),
            ("203.0.113.5/24", ObservableType::Ipv4Cidr, "203.0.113.0/24"),
            (
                "2001:db8:abcd::/48",
                ObservableType::Ipv6Cidr,
                "2001:db8:abcd::/48",
            ),
            ("198.51.100.7/32", ObservableType::Ipv4, "198.51.100.7"),
            ("fe80::1%eth0", ObservableType::Ipv6, "fe80::1"),
            ("198.51.100[.]7", ObservableType::Ipv4, "198.51.100.7"),
        ] {
            assert_eq!(
                value_of(stub(
                    "ipAddress".to_lowercase().as_str(),
                    Some(raw),
                    None,
                    None
                )),
                ok(observable, expected),
                "{raw}"
            );
        }
        for raw in [
            "999.1.2.3",
            "1.2.3.4/33",
            "::1/129",
            "1.2.3",
            "198.051.100.7",
        ] {
            let Classified::Reject(reason) = value_of(stub("ipaddress", Some(raw), None, None))
            else {
                panic!("{raw} should be rejected");
            };
            assert!(reason.contains("IP"), "{reason}");
        }
    }

    #[test]
    fn certificates_need_a_sha1() {
        assert_eq!(
            value_of(stub(
                "sslcertificate",
                Some("01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67"),
                None,
                None
            )),
            ok(
                ObservableType::X509Sha1,
                "0123456789abcdef0123456789abcdef01234567"
            )
        );
        assert!(matches!(
            value_of(stub("sslcertificate", Some("abc"), None, None)),
            Classified::Reject(_)
        ));
    }

    #[test]
    fn classifies_unclassified_values_by_kind_then_by_sniffing() {
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        assert_eq!(
            value_of(stub("unclassifiedartifact", None, Some("md5"), Some(md5))),
            ok(ObservableType::Md5, &md5.to_lowercase())
        );
        assert_eq!(
            value_of(stub(
                "unclassifiedartifact",
                None,
                Some("fileHash"),
                Some(&"a".repeat(64))
            )),
            ok(ObservableType::Sha256, &"a".repeat(64))
        );
        assert!(matches!(
            value_of(stub(
                "unclassifiedartifact",
                None,
                Some("sha256"),
                Some(md5)
            )),
            Classified::Reject(_)
        ));
        assert_eq!(
            value_of(stub(
                "unclassifiedartifact",
                None,
                Some("Url"),
                Some("HXXP://Evil.Example.com/It's\\a")
            )),
            ok(ObservableType::Url, "http://evil.example.com/It's\\a")
        );
        assert_eq!(
            value_of(stub(
                "unclassifiedartifact",
                None,
                Some("whatever"),
                Some("a@B.example")
            )),
            ok(ObservableType::Email, "a@b.example")
        );
        assert_eq!(
            value_of(stub(
                "unclassifiedartifact",
                None,
                None,
                Some("http://[2001:db8::1]/x")
            )),
            ok(ObservableType::Url, "http://[2001:db8::1]/x")
        );
        assert_eq!(
            value_of(stub(
                "unclassifiedartifact",
                Some("fallback.example"),
                Some("domain"),
                None
            )),
            ok(ObservableType::Domain, "fallback.example")
        );
    }

    #[test]
    fn skips_and_rejects_with_reasons() {
        assert!(
            matches!(value_of(stub("hostcookie", Some("b64"), None, None)), Classified::Skip(r) if r.contains("hostCookie"))
        );
        assert_eq!(
            value_of(stub("futureartifacttype", Some("x"), None, None)),
            Classified::Reject("unknown artifact type 'futureartifacttype'".into())
        );
        assert!(
            matches!(value_of(stub("hostname", None, None, None)), Classified::Reject(r) if r.contains("no value"))
        );
    }

    proptest! {
        #[test]
        fn classification_never_panics(type_name in "[a-z]{0,20}", id in proptest::option::of(".*"), kind in proptest::option::of(".*"), value in proptest::option::of(".*")) {
            let _ = value_of(Artifact { type_name, id, kind, value });
        }

        #[test]
        fn normalization_is_idempotent(raw in "[A-Za-z0-9.:/\\[\\]-]{1,40}") {
            for handling in ["hostname", "ipaddress", "host"] {
                if let Classified::Value(observable, value) = value_of(stub(handling, Some(&raw), None, None)) {
                    prop_assert_eq!(value_of(stub(handling, Some(&value), None, None)), Classified::Value(observable, value.clone()));
                }
            }
        }

        #[test]
        fn every_ipv4_address_roundtrips(a: u8, b: u8, c: u8, d: u8) {
            let text = format!("{a}.{b}.{c}.{d}");
            prop_assert_eq!(ip_or_cidr(&text), Ok((ObservableType::Ipv4, text.clone())));
        }
    }
}
