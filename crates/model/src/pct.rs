//! Percent-encoding of opaque Graph ids for file names and URL path segments.
//!
//! Profile and indicator ids are opaque: they can be 64-hex hashes, slugs, or base64 strings with
//! `/`, `+` and `=`. Every byte outside the RFC 3986 unreserved set is encoded, with upper-case hex,
//! so that the result is a safe single path segment and a portable file name.

/// Percent-encodes every byte of `id` outside `A-Z a-z 0-9 - . _ ~`, with upper-case hex digits.
pub fn pct(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for &byte in id.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Reverses [`pct`]. Returns `None` for malformed escapes or bytes that are not UTF-8.
pub fn unpct(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_base64_ids_and_keeps_unreserved() {
        assert_eq!(pct("ab/c+d="), "ab%2Fc%2Bd%3D");
        assert_eq!(pct("Aqua-Blizzard_1.0~x"), "Aqua-Blizzard_1.0~x");
        assert_eq!(pct("ü"), "%C3%BC");
        assert_eq!(pct("a b%"), "a%20b%25");
    }

    proptest! {
        #[test]
        fn roundtrips(id in any::<String>()) {
            prop_assert_eq!(unpct(&pct(&id)), Some(id));
        }

        #[test]
        fn output_is_a_safe_path_segment(id in any::<String>()) {
            let encoded = pct(&id);
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
            for escape in encoded.split('%').skip(1) {
                prop_assert!(escape[..2].bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
            }
        }
    }
}
