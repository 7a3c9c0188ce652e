//! What a MISP server stores for an attribute value, or why it would drop it.
//!
//! MISP rewrites every attribute value before it validates it (`MispAttribute::beforeValidateMassage`):
//! trim, refang (`ComplexTypeTool::refangValue`), then `AttributeValidationTool::modifyBeforeValidation`
//! (characters outside the Basic Multilingual Plane become `?` because the column is utf8mb3;
//! hashes and host names lower-cased; domains lower-cased, dot-trimmed and converted to punycode;
//! IPv6 compressed; `/32` and `/128` collapsed; colons removed from certificate fingerprints), and
//! finally `AttributeValidationTool::validate`. An attribute that fails is dropped from the event
//! and only logged on the server (reference `misp.md` §1.2, §1.4).
//!
//! ctiport writes the value MISP would store, so that the feed's `hashes.csv`, the attribute uuids
//! and MISP's duplicate collapsing all agree with what lands in the database, and it never writes
//! a value MISP would refuse under its type: such values go out under the table's fallback type.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

/// MISP's limit on an attribute value (`maxTextLength`), in bytes.
pub const MAX_VALUE_BYTES: usize = 65_535;

/// The MISP attribute types the attribute table may use: those whose value rules are
/// implemented here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MispType {
    Domain,
    Hostname,
    IpDst,
    IpSrc,
    Url,
    Md5,
    Sha1,
    Sha256,
    Sha512,
    X509FingerprintSha1,
    Email,
    EmailSrc,
    EmailDst,
    Text,
    Other,
}

impl MispType {
    pub const ALL: [MispType; 15] = [
        MispType::Domain,
        MispType::Hostname,
        MispType::IpDst,
        MispType::IpSrc,
        MispType::Url,
        MispType::Md5,
        MispType::Sha1,
        MispType::Sha256,
        MispType::Sha512,
        MispType::X509FingerprintSha1,
        MispType::Email,
        MispType::EmailSrc,
        MispType::EmailDst,
        MispType::Text,
        MispType::Other,
    ];

    /// The type's name in MISP (`describeTypes.json`).
    pub fn as_str(self) -> &'static str {
        match self {
            MispType::Domain => "domain",
            MispType::Hostname => "hostname",
            MispType::IpDst => "ip-dst",
            MispType::IpSrc => "ip-src",
            MispType::Url => "url",
            MispType::Md5 => "md5",
            MispType::Sha1 => "sha1",
            MispType::Sha256 => "sha256",
            MispType::Sha512 => "sha512",
            MispType::X509FingerprintSha1 => "x509-fingerprint-sha1",
            MispType::Email => "email",
            MispType::EmailSrc => "email-src",
            MispType::EmailDst => "email-dst",
            MispType::Text => "text",
            MispType::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    fn hex_length(self) -> Option<usize> {
        match self {
            MispType::Md5 => Some(32),
            MispType::Sha1 | MispType::X509FingerprintSha1 => Some(40),
            MispType::Sha256 => Some(64),
            MispType::Sha512 => Some(128),
            _ => None,
        }
    }

    fn is_email(self) -> bool {
        matches!(
            self,
            MispType::Email | MispType::EmailSrc | MispType::EmailDst
        )
    }
}

/// ctiport's own step before MISP's: in a URL, characters outside the Basic Multilingual Plane
/// (emoji, for instance) are percent-encoded as UTF-8, which is how they travel on the wire
/// anyway. MISP would turn each into `?`, which changes what a URL means (`/🔥/x` would become
/// `/?/x`, a query). Other types are left to MISP's `?` replacement.
pub fn prepare(misp_type: MispType, value: &str) -> Cow<'_, str> {
    if misp_type != MispType::Url || !has_supplementary(value) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 16);
    for c in value.chars() {
        if u32::from(c) > 0xFFFF {
            let mut buffer = [0u8; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether a text holds characters MISP's utf8mb3 columns cannot store (4-byte UTF-8).
pub fn has_supplementary(text: &str) -> bool {
    text.chars().any(|c| u32::from(c) > 0xFFFF)
}

/// Replaces every 4-byte UTF-8 character with `?`, as MISP does (`handle4ByteUnicode`).
pub fn replace_supplementary(text: &str) -> Cow<'_, str> {
    if has_supplementary(text) {
        Cow::Owned(
            text.chars()
                .map(|c| if u32::from(c) > 0xFFFF { '?' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// The value MISP stores for `value` under `misp_type`, or MISP's reason for dropping it.
///
/// The result is a fixed point: MISP normalizes what it receives once, so a value that a second
/// pass would still change (a nested defang such as `[[.]]`, which one refang pass turns into
/// `[.]`) is normalized again until nothing changes. What ctiport writes is then exactly what
/// MISP stores when it receives it.
pub fn normalize(misp_type: MispType, value: &str) -> Result<String, String> {
    let mut current = normalize_once(misp_type, value)?;
    // Every pass that changes a value shortens it or keeps its length (refanging, trimming), so
    // this ends; the bound is a safeguard.
    for _ in 0..64 {
        let next = normalize_once(misp_type, &current)?;
        if next == current {
            return Ok(current);
        }
        current = next;
    }
    Err("the value does not settle under MISP's normalization".into())
}

/// One pass of MISP's `beforeValidateMassage` and validation.
fn normalize_once(misp_type: MispType, value: &str) -> Result<String, String> {
    let trimmed = php_trim(value);
    let refanged = refang(misp_type, trimmed);
    let modified = modify_before_validation(misp_type, &replace_supplementary(&refanged));
    if modified.trim().is_empty() {
        return Err("the value is empty".into());
    }
    validate(misp_type, &modified)?;
    if modified.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "the value is {} bytes long; MISP stores at most {MAX_VALUE_BYTES}",
            modified.len()
        ));
    }
    Ok(modified)
}

/// PHP's `trim()` with its default character list.
fn php_trim(value: &str) -> &str {
    value.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B'])
}

/// `ComplexTypeTool::REFANG_REGEX_TABLE`, rule by rule, each applied in one left-to-right pass
/// like `preg_replace`.
fn refang(misp_type: MispType, value: &str) -> String {
    use MispType::*;
    let mut text = value.to_owned();
    let urlish = misp_type == Url;
    if urlish {
        // '/^(hxxp|hxtp|htxp|meow|h\[tt\]p)/i' -> 'http'
        for prefix in ["hxxp", "hxtp", "htxp", "meow", "h[tt]p"] {
            if text.len() >= prefix.len()
                && text.is_char_boundary(prefix.len())
                && text[..prefix.len()].eq_ignore_ascii_case(prefix)
            {
                text = format!("http{}", &text[prefix.len()..]);
                break;
            }
        }
    }
    if matches!(
        misp_type,
        Url | IpDst | IpSrc | Domain | Hostname | Email | EmailSrc | EmailDst
    ) {
        text = replace_each(&text, &["[.]", "[dot]", "(dot)"], ".");
    }
    if urlish {
        text = replace_each(&text, &["[hxxp://]"], "http://");
    }
    if misp_type.is_email() {
        text = replace_each(&text, &["[@]", "[at]"], "@");
    }
    if urlish {
        text = replace_each(&text, &["[:]"], ":");
    }
    text
}

/// Replaces every occurrence of any of `patterns` (case-sensitive), scanning once from the left.
fn replace_each(text: &str, patterns: &[&str], replacement: &str) -> String {
    if !patterns.iter().any(|p| text.contains(p)) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for pattern in patterns {
            if let Some(after) = rest.strip_prefix(pattern) {
                out.push_str(replacement);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// `AttributeValidationTool::modifyBeforeValidation` for the supported types. PHP's
/// `strtolower` changes ASCII letters only.
fn modify_before_validation(misp_type: MispType, value: &str) -> String {
    use MispType::*;
    match misp_type {
        IpDst | IpSrc => normalize_ip(value),
        Md5 | Sha1 | Sha256 | Sha512 | Hostname | Email | EmailSrc | EmailDst => {
            value.to_ascii_lowercase()
        }
        Domain => {
            let lowered = value.to_ascii_lowercase();
            let trimmed = lowered.trim_matches('.');
            if is_domain_valid(trimmed) {
                trimmed.to_owned()
            } else {
                idn_to_ascii(trimmed).unwrap_or_else(|| trimmed.to_owned())
            }
        }
        X509FingerprintSha1 => value.replace(':', "").to_ascii_lowercase(),
        Url | Text | Other => value.to_owned(),
    }
}

/// `AttributeValidationTool::validate` for the supported types.
fn validate(misp_type: MispType, value: &str) -> Result<(), String> {
    use MispType::*;
    if let Some(length) = misp_type.hex_length() {
        return if value.len() == length && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(format!(
                "Checksum has an invalid length or format (expected: {length} hexadecimal characters)."
            ))
        };
    }
    match misp_type {
        IpDst | IpSrc => validate_ip(value),
        Domain | Hostname => {
            if is_domain_valid(value) {
                Ok(())
            } else {
                let name = misp_type.as_str();
                let mut capitalized = name[..1].to_ascii_uppercase();
                capitalized.push_str(&name[1..]);
                Err(format!("{capitalized} has an invalid format."))
            }
        }
        Email | EmailSrc | EmailDst => {
            if is_email_valid(value) {
                Ok(())
            } else {
                Err("Email address has an invalid format.".into())
            }
        }
        Url => {
            if value.contains('\n') {
                Err("Value must not contain new line character.".into())
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// `#^[A-Z0-9.\-_]+\.[A-Z0-9\-]{2,}$#i`.
fn is_domain_valid(value: &str) -> bool {
    let Some((head, tld)) = value.rsplit_once('.') else {
        return false;
    };
    // The greedy head may itself contain dots; the regex backtracks to the last dot whose tail
    // matches, and a tail can never contain a dot, so the last dot is the only candidate.
    !head.is_empty()
        && head
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `#^.[^\s]*\@.*\..*$#i` (PCRE without /u: `\s` is ASCII white space, `.` is not a newline).
fn is_email_valid(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'\n') {
        return false;
    }
    // Backtracking picks some '@' after the first byte; the earliest one is the easiest to satisfy.
    let Some(at) = bytes[1..].iter().position(|b| *b == b'@').map(|i| i + 1) else {
        return false;
    };
    let ascii_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\x0B' | b'\x0C' | b'\r');
    !bytes[1..at].iter().any(ascii_space) && bytes[at + 1..].contains(&b'.')
}

/// PHP's `idn_to_ascii` (ICU UTS #46 with default options: transitional processing, hyphen and
/// length checks, no STD3 rules), or `None` where it returns false.
fn idn_to_ascii(domain: &str) -> Option<String> {
    // Transitional processing maps the four deviation characters; the idna crate implements
    // only nontransitional processing, so they are mapped first.
    let mut mapped = String::with_capacity(domain.len());
    for c in domain.chars() {
        match c {
            'ß' | 'ẞ' => mapped.push_str("ss"),
            'ς' => mapped.push('σ'),
            '\u{200C}' | '\u{200D}' => {}
            other => mapped.push(other),
        }
    }
    idna::uts46::Uts46::new()
        .to_ascii(
            mapped.as_bytes(),
            idna::uts46::AsciiDenyList::EMPTY,
            idna::uts46::Hyphens::Check,
            idna::uts46::DnsLength::Verify,
        )
        .ok()
        .map(Cow::into_owned)
}

/// `AttributeValidationTool::normalizeIp`: IPv6 compressed as `inet_ntop` prints it; a `/32`
/// (IPv4) or `/128` (IPv6) range becomes the bare address. IPv4 text is left alone.
fn normalize_ip(value: &str) -> String {
    let compress = |ip: &str| -> String {
        if ip.find(':').is_some_and(|i| i > 0)
            && let Ok(v6) = ip.parse::<Ipv6Addr>()
        {
            return inet_ntop6(v6);
        }
        ip.to_owned()
    };
    match value.find('/') {
        Some(slash) if slash > 0 => {
            let (ip, range) = (&value[..slash], &value[slash + 1..]);
            let ip = compress(ip);
            let found_after_start = |needle: char| value.find(needle).is_some_and(|i| i > 0);
            if (range == "32" && found_after_start('.'))
                || (range == "128" && found_after_start(':'))
            {
                ip
            } else {
                format!("{ip}/{range}")
            }
        }
        _ => compress(value),
    }
}

/// glibc `inet_ntop(AF_INET6)`: lower-case hex, the longest run (at least two) of zero groups
/// as `::` (the first on a tie), and IPv4-compatible (`::a.b.c.d`) or IPv4-mapped
/// (`::ffff:a.b.c.d`) addresses with a dotted tail.
pub(crate) fn inet_ntop6(address: Ipv6Addr) -> String {
    let words = address.segments();
    let (mut best_base, mut best_len) = (None::<usize>, 0usize);
    let mut index = 0;
    while index < 8 {
        if words[index] == 0 {
            let start = index;
            while index < 8 && words[index] == 0 {
                index += 1;
            }
            if index - start > best_len {
                best_base = Some(start);
                best_len = index - start;
            }
        } else {
            index += 1;
        }
    }
    if best_len < 2 {
        best_base = None;
    }
    let dotted = |w6: u16, w7: u16| {
        let [a, b] = w6.to_be_bytes();
        let [c, d] = w7.to_be_bytes();
        Ipv4Addr::new(a, b, c, d).to_string()
    };
    if best_base == Some(0) && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)) {
        let prefix = if best_len == 6 { "::" } else { "::ffff:" };
        return format!("{prefix}{}", dotted(words[6], words[7]));
    }
    let mut out = String::with_capacity(39);
    let mut index = 0;
    while index < 8 {
        if best_base == Some(index) {
            out.push_str("::");
            index += best_len;
            continue;
        }
        if index > 0 && !out.ends_with("::") {
            out.push(':');
        }
        out.push_str(&format!("{:x}", words[index]));
        index += 1;
    }
    out
}

/// `ip-dst`/`ip-src` validation: an address, or `address/prefix` within the family's width.
fn validate_ip(value: &str) -> Result<(), String> {
    if value.contains('/') {
        let parts: Vec<&str> = value.split('/').collect();
        let [address, range] = parts.as_slice() else {
            return Err("Invalid CIDR notation value found.".into());
        };
        if range.is_empty() || !range.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Invalid CIDR notation value found.".into());
        }
        let range: u128 = range.parse().unwrap_or(u128::MAX);
        return if address.parse::<Ipv4Addr>().is_ok() {
            if range > 32 {
                Err("Invalid CIDR notation value found, for IPv4 must be lower or equal 32.".into())
            } else {
                Ok(())
            }
        } else if address.parse::<Ipv6Addr>().is_ok() {
            if range > 128 {
                Err(
                    "Invalid CIDR notation value found, for IPv6 must be lower or equal 128."
                        .into(),
                )
            } else {
                Ok(())
            }
        } else {
            Err("IP address has an invalid format.".into())
        };
    }
    if value.parse::<Ipv4Addr>().is_ok() || value.parse::<Ipv6Addr>().is_ok() {
        Ok(())
    } else {
        Err("IP address has an invalid format.".into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(misp_type: MispType, value: &str) -> String {
        normalize(misp_type, value).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    #[test]
    fn follows_the_tested_examples_of_the_reference() {
        // misp.md §1.4
        assert_eq!(
            normalize(MispType::IpDst, "999.1.1.1").unwrap_err(),
            "IP address has an invalid format."
        );
        assert!(
            normalize(MispType::IpDst, "10.0.0.0/33")
                .unwrap_err()
                .contains("lower or equal 32")
        );
        assert_eq!(ok(MispType::IpDst, "1.2.3.4/32"), "1.2.3.4");
        assert_eq!(ok(MispType::IpDst, "2001:0db8:0000::1"), "2001:db8::1");
        assert_eq!(ok(MispType::IpDst, "2001:db8::1/128"), "2001:db8::1");
        assert_eq!(ok(MispType::IpDst, "1[.]2[.]3[.]4"), "1.2.3.4");
        assert_eq!(
            ok(MispType::Domain, "Evil.Example.COM."),
            "evil.example.com"
        );
        assert!(normalize(MispType::Domain, "localhost").is_err());
        assert_eq!(ok(MispType::Hostname, "WWW.Example.COM"), "www.example.com");
        assert_eq!(
            ok(MispType::Url, "hxxp://evil[.]example.com/x"),
            "http://evil.example.com/x"
        );
        assert_eq!(ok(MispType::Sha256, &"AB".repeat(32)), "ab".repeat(32));
        assert!(normalize(MispType::Sha256, "abc").is_err());
        assert_eq!(
            ok(MispType::X509FingerprintSha1, &["AA"; 20].join(":")),
            "aa".repeat(20)
        );
        assert_eq!(ok(MispType::Email, "a[at]b[.]com"), "a@b.com");
        // A nested defang settles: MISP would refang what it receives once more.
        assert_eq!(ok(MispType::Url, "hxxp://[[.]]/"), "http://./");
    }

    #[test]
    fn converts_internationalized_domains_to_punycode_like_php() {
        assert_eq!(
            ok(MispType::Domain, "bücher.example"),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            ok(MispType::Domain, "例え.テスト"),
            "xn--r8jz45g.xn--zckzah"
        );
        assert_eq!(
            ok(MispType::Domain, "пример.испытание"),
            "xn--e1afmkfd.xn--80akhbyknj4f"
        );
        // Transitional processing, as ICU's default and Python's IDNA 2003 codec do.
        assert_eq!(ok(MispType::Domain, "straße.example"), "strasse.example");
        // MISP converts `domain` only; a Unicode `hostname` is refused.
        assert!(normalize(MispType::Hostname, "bücher.example").is_err());
        // Not a valid domain in MISP's eyes, punycode or not.
        for refused in ["*.example.com", "single-label", "a.b", "x.y_z"] {
            assert!(normalize(MispType::Domain, refused).is_err(), "{refused}");
        }
        assert_eq!(
            ok(MispType::Domain, "_dmarc.example.com"),
            "_dmarc.example.com"
        );
    }

    #[test]
    fn lower_cases_emails_the_way_php_does() {
        assert_eq!(
            ok(MispType::Email, "First.Last+tag@Example.com"),
            "first.last+tag@example.com"
        );
        assert_eq!(ok(MispType::Email, "用户@例子.测试"), "用户@例子.测试");
        assert_eq!(ok(MispType::Email, "Ünï@example.com"), "Ünï@example.com");
        assert!(normalize(MispType::Email, "no-at-sign.example").is_err());
        assert!(normalize(MispType::Email, "a b@example.com").is_err());
        assert!(normalize(MispType::Email, "a@localhost").is_err());
    }

    #[test]
    fn handles_characters_outside_the_basic_multilingual_plane() {
        assert_eq!(
            prepare(MispType::Url, "https://bad.example.com/🔥/ü?q=√"),
            "https://bad.example.com/%F0%9F%94%A5/ü?q=√"
        );
        assert_eq!(
            ok(MispType::Url, "https://bad.example.com/🔥/x"),
            "https://bad.example.com/?/x"
        );
        assert_eq!(ok(MispType::Text, "fox 🦊"), "fox ?");
        assert!(matches!(prepare(MispType::Text, "🦊"), Cow::Borrowed(_)));
    }

    #[test]
    fn compresses_ipv6_like_inet_ntop() {
        for (input, expected) in [
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("::1", "::1"),
            ("::", "::"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("FE80::1", "fe80::1"),
            ("2001:db8::/32", "2001:db8::/32"),
        ] {
            assert_eq!(ok(MispType::IpDst, input), expected, "{input}");
        }
    }

    #[test]
    fn refuses_values_misp_cannot_hold() {
        assert!(normalize(MispType::Url, "http://x/a\nb").is_err());
        assert!(normalize(MispType::Text, "  ").is_err());
        let huge = format!("http://x/{}", "a".repeat(MAX_VALUE_BYTES));
        assert!(
            normalize(MispType::Url, &huge)
                .unwrap_err()
                .contains("65535")
        );
    }

    fn supported_value() -> impl Strategy<Value = (MispType, String)> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|o| (MispType::IpDst, Ipv4Addr::from(o).to_string())),
            (any::<u128>(), 0u8..=128).prop_map(|(a, bits)| {
                let value = if bits == 128 {
                    Ipv6Addr::from(a).to_string()
                } else {
                    format!("{}/{bits}", Ipv6Addr::from(a))
                };
                (MispType::IpDst, value)
            }),
            "[a-zA-Z0-9ßü例-]{1,12}(\\.[a-zA-Z0-9ü-]{1,10}){0,3}\\.[a-zA-Z]{2,6}\\.?"
                .prop_map(|d| (MispType::Domain, d)),
            "(hxxp|https?)://[a-z0-9.\\[\\]]{1,20}/[ -~üé🔥]{0,30}"
                .prop_map(|u| (MispType::Url, u)),
            "[0-9a-fA-F]{64}".prop_map(|h| (MispType::Sha256, h)),
            "[0-9a-fA-F:]{40,59}".prop_map(|h| (MispType::X509FingerprintSha1, h)),
            "[A-Za-z0-9.+_ü-]{1,12}@[a-z0-9-]{1,10}\\.[a-z]{2,4}"
                .prop_map(|e| (MispType::Email, e)),
            "[ -~éü🦊\n]{0,40}".prop_map(|t| (MispType::Text, t)),
        ]
    }

    proptest! {
        /// What MISP stores is a fixed point: MISP re-normalizing a value ctiport wrote changes
        /// nothing, so hashes and uuids computed on it are the ones MISP's data matches.
        #[test]
        fn normalization_is_idempotent((misp_type, value) in supported_value()) {
            let prepared = prepare(misp_type, &value);
            if let Ok(stored) = normalize(misp_type, &prepared) {
                prop_assert_eq!(normalize(misp_type, &stored), Ok(stored.clone()));
                prop_assert!(!has_supplementary(&stored));
                prop_assert!(stored.len() <= MAX_VALUE_BYTES);
                prop_assert_eq!(stored.trim(), stored.as_str());
            }
        }

        /// Every text value survives under the fallback type (nothing is dropped), with only
        /// MISP's own replacements.
        #[test]
        fn text_always_validates(value in "[ -~éü🦊]{1,60}") {
            prop_assume!(!value.trim().is_empty());
            let stored = normalize(MispType::Text, &value).unwrap();
            prop_assert_eq!(stored, replace_supplementary(php_trim(&value)).into_owned());
        }

        /// The IP normalizer agrees with Rust's own canonical IPv6 form except where glibc
        /// prints a dotted IPv4 tail.
        #[test]
        fn ipv6_compression_matches_the_standard_form(a in any::<u128>()) {
            let address = Ipv6Addr::from(a);
            let ours = inet_ntop6(address);
            prop_assert_eq!(ours.parse::<Ipv6Addr>().ok(), Some(address));
            if !ours.contains('.') {
                prop_assert_eq!(ours, address.to_string());
            }
        }

        #[test]
        fn url_preparation_removes_every_supplementary_character(value in "[ -~é🔥𝕏]{0,40}") {
            let prepared = prepare(MispType::Url, &value);
            prop_assert!(!has_supplementary(&prepared));
        }
    }
}
