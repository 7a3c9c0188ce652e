//! Synthetic but *valid* indicator values and ids.
//!
//! Every value is well-formed for its type and harmless: host names end in reserved names
//! (`.example`, `.test`, `example.com/net/org`, RFC 2606/6761), IPv4 addresses come from the
//! documentation (RFC 5737), benchmarking (RFC 2544) and shared (RFC 6598) ranges, IPv6 from
//! `2001:db8::/32` (RFC 3849). Values that must not repeat (host names, addresses) are derived
//! from a per-indicator counter through bijections, so a million indicators never collide by
//! accident; only the deliberate ~2 % sharing repeats values.

use std::net::{Ipv4Addr, Ipv6Addr};

use rand::Rng;
use rand::seq::IndexedRandom;

use super::vocab::{FILE_EXTENSIONS, FILE_NAMES, FIRST_NAMES, LAST_NAMES, WORDS};
use crate::rng::{SplitMix64, mix64};

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Picks from a non-empty constant list.
pub fn pick<'a>(rng: &mut SplitMix64, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

/// A bijection on the low 40 bits: distinct counters give distinct tokens.
fn scramble40(x: u64, salt: u64) -> u64 {
    const MASK: u64 = (1 << 40) - 1;
    let mut v = x.wrapping_add(salt) & MASK;
    v = v.wrapping_mul(0x9E37_79B9_7F4B) & MASK; // odd multiplier: invertible mod 2^40
    v ^= v >> 19;
    v = v.wrapping_mul(0xC2B2_AE3D_27D5) & MASK; // odd
    v ^ (v >> 17)
}

fn base36(mut v: u64, min_len: usize) -> String {
    let mut digits = Vec::new();
    while v > 0 || digits.len() < min_len {
        digits.push(BASE36[(v % 36) as usize]);
        v /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

pub fn hex(rng: &mut SplitMix64, len: usize) -> String {
    (0..len)
        .map(|_| char::from(BASE36[rng.random_range(0..16)]))
        .collect()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// base64 of `text`, lengthened with `#` until the encoding ends in `=` (ids "with =").
pub fn base64_padded(text: &str) -> String {
    let mut text = text.to_owned();
    // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    while text.len() % 3 == 0 {
        text.push('#');
    }
    base64(text.as_bytes())
}

/// Generates values; `salt` (from the seed) makes two seeds produce different host names.
#[derive(Clone, Debug)]
pub struct Values {
    salt: u64,
    ipv4_issued: u64,
}

const TLDS: &[&str] = &[
    "example",
    "test",
    "example.com",
    "example.net",
    "example.org",
];

/// IPv4 ranges, used in this order: documentation (RFC 5737), benchmarking (RFC 2544), shared
/// address space (RFC 6598). Small dumps get documentation addresses only.
const V4_POOL: [(u32, u32); 5] = [
    (0xC000_0200, 256),     // 192.0.2.0/24
    (0xC633_6400, 256),     // 198.51.100.0/24
    (0xCB00_7100, 256),     // 203.0.113.0/24
    (0xC612_0000, 1 << 17), // 198.18.0.0/15
    (0x6440_0000, 1 << 22), // 100.64.0.0/10
];
/// Odd and not a multiple of 3, so `k ↦ k·A + b mod size` permutes every tier
/// (sizes 768, 2^17, 2^22).
const V4_STEP: u64 = 2_654_435_761;

impl Values {
    pub fn new(seed: u64) -> Self {
        Values {
            salt: mix64(seed ^ 0x5EED_5A17),
            ipv4_issued: 0,
        }
    }

    /// `cdn-sync-3k9x2a.files.example`: unique per `n`.
    pub fn hostname(&self, rng: &mut SplitMix64, n: u64) -> String {
        let token = base36(scramble40(n, self.salt), 6);
        let first = pick(rng, WORDS);
        let label = if rng.random_bool(0.5) {
            format!("{first}-{}-{token}", pick(rng, WORDS))
        } else {
            format!("{first}{token}")
        };
        let tld = pick(rng, TLDS);
        if rng.random_bool(0.4) {
            format!("{label}.{}-{}.{tld}", pick(rng, WORDS), pick(rng, WORDS))
        } else {
            format!("{label}.{tld}")
        }
    }

    /// The next IPv4 address: unique for the first 4.3 million calls (then the last tier
    /// wraps around), in a seeded order within each tier.
    pub fn next_ipv4(&mut self) -> String {
        let n = self.ipv4_issued;
        self.ipv4_issued += 1;
        let tiers: [(u64, &[(u32, u32)]); 3] = [
            (768, &V4_POOL[..3]),
            (1 << 17, &V4_POOL[3..4]),
            (1 << 22, &V4_POOL[4..]),
        ];
        let mut k = n;
        for (i, (size, ranges)) in tiers.iter().enumerate() {
            if k < *size || i == tiers.len() - 1 {
                let mut offset = ((u128::from(k % size) * u128::from(V4_STEP)
                    + u128::from(self.salt))
                    % u128::from(*size)) as u32;
                for &(base, len) in *ranges {
                    if offset < len {
                        return Ipv4Addr::from(base + offset).to_string();
                    }
                    offset -= len;
                }
            }
            k -= size;
        }
        Ipv4Addr::new(192, 0, 2, 1).to_string()
    }

    /// `2001:db8:…` in canonical (compressed, lower-case) form; unique per `n`.
    pub fn ipv6(&self, n: u64) -> String {
        let v = mix64(n ^ self.salt);
        let g = |shift: u32| ((v >> shift) & 0xFFFF) as u16;
        Ipv6Addr::new(0x2001, 0x0db8, g(48), g(32), 0, 0, g(16), g(0)).to_string()
    }

    /// A network address with its prefix; host bits are zero.
    pub fn ipv4_cidr(&self, rng: &mut SplitMix64) -> String {
        match rng.random_range(0..3) {
            0 => format!(
                "198.{}.{}.0/24",
                rng.random_range(18..=19),
                rng.random_range(0..=255)
            ),
            1 => format!("203.0.113.{}/28", 16 * rng.random_range(0..16)),
            _ => format!("100.{}.0.0/16", rng.random_range(64..128)),
        }
    }

    pub fn ipv6_cidr(&self, rng: &mut SplitMix64) -> String {
        let a: u16 = rng.random();
        if rng.random_bool(0.5) {
            format!("{}/48", Ipv6Addr::new(0x2001, 0x0db8, a, 0, 0, 0, 0, 0))
        } else {
            let b: u16 = rng.random();
            format!("{}/64", Ipv6Addr::new(0x2001, 0x0db8, a, b, 0, 0, 0, 0))
        }
    }

    /// Only RFC 3986 characters; no spaces.
    pub fn url(&mut self, rng: &mut SplitMix64, n: u64) -> String {
        let scheme = if rng.random_bool(0.7) {
            "https"
        } else {
            "http"
        };
        let host = if rng.random_bool(0.1) {
            self.next_ipv4()
        } else {
            self.hostname(rng, n)
        };
        let port = if rng.random_bool(0.1) {
            format!(":{}", ["8080", "8443", "4443"][rng.random_range(0..3)])
        } else {
            String::new()
        };
        let file = format!(
            "{}_{}.{}",
            pick(rng, FILE_NAMES),
            rng.random_range(1..9999),
            pick(rng, FILE_EXTENSIONS)
        );
        let path = match rng.random_range(0..5) {
            0 => format!("/{}/{file}", pick(rng, WORDS)),
            1 => format!(
                "/{}.php?id={}&session={}",
                pick(rng, WORDS),
                rng.random_range(1..100_000),
                hex(rng, 8)
            ),
            2 => format!(
                "/wp-content/uploads/{}/{:02}/{file}",
                rng.random_range(2018..2026),
                rng.random_range(1..=12)
            ),
            3 => format!(
                "/{}/{}/?ref={}",
                pick(rng, WORDS),
                pick(rng, WORDS),
                hex(rng, 6)
            ),
            _ => "/".to_owned(),
        };
        format!("{scheme}://{host}{port}{path}")
    }

    pub fn email(&self, rng: &mut SplitMix64, n: u64) -> String {
        format!(
            "{}.{}{}@{}-{}.{}",
            pick(rng, FIRST_NAMES),
            pick(rng, LAST_NAMES),
            base36(scramble40(n, self.salt) % 100_000, 1),
            pick(rng, WORDS),
            pick(rng, WORDS),
            pick(rng, TLDS)
        )
    }

    /// 64 hex digits (most profiles).
    pub fn hex_profile_id(&self, rng: &mut SplitMix64) -> String {
        hex(rng, 64)
    }

    /// base64 of 16 random bytes, forced to contain `+` and `/`, ending in `==`.
    pub fn base64_profile_id(&self, rng: &mut SplitMix64) -> String {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes[..]);
        // Each of the 5 full 3-byte groups starts with a 6-bit digit taken from its first byte.
        let plus = rng.random_range(0..5);
        let slash = (plus + 1 + rng.random_range(0..4)) % 5;
        bytes[3 * plus] = 0xF8 | (bytes[3 * plus] & 0x03); // top six bits 62 → '+'
        bytes[3 * slash] |= 0xFC; // top six bits 63 → '/'
        base64(&bytes)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::IpAddr;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"fake-malicious.site"),
            "ZmFrZS1tYWxpY2lvdXMuc2l0ZQ=="
        );
        assert!(base64_padded("abc").ends_with('='));
    }

    #[test]
    fn scramble_is_injective_on_a_range() {
        let seen: HashSet<u64> = (0..100_000).map(|n| scramble40(n, 77)).collect();
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn addresses_are_valid_and_distinct() {
        let mut v = Values::new(1);
        let v4: Vec<String> = (0..50_000).map(|_| v.next_ipv4()).collect();
        assert!(v4[..768].iter().all(|ip| ip.starts_with("192.0.2.")
            || ip.starts_with("198.51.100.")
            || ip.starts_with("203.0.113.")));
        assert!(
            v4[768..]
                .iter()
                .all(|ip| ip.starts_with("198.18.") || ip.starts_with("198.19."))
        );
        let v4: HashSet<String> = v4.into_iter().collect();
        assert_eq!(v4.len(), 50_000);
        let v6: HashSet<String> = (0..50_000).map(|n| v.ipv6(n)).collect();
        assert_eq!(v6.len(), 50_000);
        for ip in v4.iter().chain(&v6) {
            assert!(ip.parse::<IpAddr>().is_ok(), "{ip}");
        }
        let mut rng = SplitMix64::new(3);
        for _ in 0..200 {
            for cidr in [v.ipv4_cidr(&mut rng), v.ipv6_cidr(&mut rng)] {
                let (addr, bits) = cidr.split_once('/').expect("prefix");
                let addr: IpAddr = addr.parse().expect("address");
                let bits: u32 = bits.parse().expect("bits");
                let host_bits_zero = match addr {
                    IpAddr::V4(a) => u32::from(a) & (u32::MAX >> bits) == 0,
                    IpAddr::V6(a) => u128::from(a) & (u128::MAX >> bits) == 0,
                };
                assert!(host_bits_zero, "{cidr}");
            }
        }
    }

    #[test]
    fn profile_ids_have_the_awkward_characters() {
        let v = Values::new(1);
        let mut rng = SplitMix64::new(9);
        for _ in 0..200 {
            let id = v.base64_profile_id(&mut rng);
            assert!(
                id.contains('+') && id.contains('/') && id.ends_with("=="),
                "{id}"
            );
            assert_eq!(id.len(), 24);
        }
        assert_eq!(v.hex_profile_id(&mut rng).len(), 64);
    }
}
