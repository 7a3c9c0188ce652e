//! A tiny seedable PRNG (SplitMix64).
//!
//! `rand::rngs::StdRng` is explicitly not reproducible across `rand` releases; a generated dump or
//! a fault sequence should stay the same for a given `--seed` no matter which `rand` version
//! the lock file picks. SplitMix64 is 10 lines, passes BigCrush, and plugs into `rand`'s
//! distribution helpers through [`rand::RngCore`].

use rand::RngCore;

#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// An independent stream for a sub-task, so that adding draws to one part of the generator
    /// does not shift every value of another part.
    pub fn fork(&mut self, salt: u64) -> SplitMix64 {
        SplitMix64::new(self.next_u64() ^ mix64(salt))
    }
}

/// The SplitMix64 finalizer: a bijection on `u64` that scrambles its input well.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A random (version 4) GUID in the usual lower-case 8-4-4-4-12 form.
pub fn guid<R: RngCore + ?Sized>(rng: &mut R) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }

    #[test]
    fn guids_look_like_guids() {
        let g = guid(&mut SplitMix64::new(3));
        assert_eq!(g.len(), 36);
        assert_eq!(g.as_bytes()[14], b'4');
        assert!(g.split('-').map(str::len).eq([8, 4, 4, 4, 12]));
        assert!(matches!(g.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
    }

    #[test]
    fn works_with_rand_helpers() {
        let mut rng = SplitMix64::new(42);
        for _ in 0..1000 {
            let x = rng.random_range(3..9);
            assert!((3..9).contains(&x));
        }
        let mut bytes = [0u8; 13];
        rng.fill_bytes(&mut bytes);
        assert!(bytes.iter().any(|b| *b != 0));
    }
}
