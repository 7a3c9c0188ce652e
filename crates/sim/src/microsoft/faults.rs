//! Failures the Sentinel and Defender stand-ins inject on request, so that a client's handling
//! of a 500 or of a per-object rejection can be tested. Settable at start (flags) and at run
//! time (`POST /_sim/{sentinel|defender}/faults`), e.g. to reject an object in run 1 only.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::faults::Dice;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The next N write calls fail with a 500, nothing stored.
    pub fail_next: u64,
    /// Each write call fails with a 500 with this probability.
    pub fail_rate: f64,
    /// Objects (Sentinel: STIX ids; Defender: indicator values) rejected in a 200's
    /// per-object results.
    pub reject: BTreeSet<String>,
    /// Each object is rejected with this probability.
    pub reject_rate: f64,
}

impl Faults {
    /// Whether this write call fails as a whole.
    pub fn fail_call(&mut self, dice: &Dice) -> bool {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return true;
        }
        dice.chance(self.fail_rate)
    }

    /// Whether the object named `key` is rejected.
    pub fn reject_object(&self, key: &str, dice: &Dice) -> bool {
        self.reject.contains(key) || dice.chance(self.reject_rate)
    }

    pub fn valid(&self) -> Result<(), String> {
        for p in [self.fail_rate, self.reject_rate] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{p} is not a probability between 0 and 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down() {
        let dice = Dice::new(1);
        let mut f = Faults {
            fail_next: 2,
            reject: ["x".to_owned()].into(),
            ..Faults::default()
        };
        assert!(f.fail_call(&dice));
        assert!(f.fail_call(&dice));
        assert!(!f.fail_call(&dice));
        assert!(f.reject_object("x", &dice));
        assert!(!f.reject_object("y", &dice));
        assert!(
            Faults {
                fail_rate: 1.5,
                ..Faults::default()
            }
            .valid()
            .is_err()
        );
    }
}
