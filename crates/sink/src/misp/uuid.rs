//! Deterministic MISP uuids: UUIDv5 in ctiport's namespace, so that the same input gives the same
//! event and attribute uuids on any machine, and a re-export updates events instead of
//! duplicating them.
//!
//! * event: `"misp-event|<profile id>"`; an extension of a large profile (part `k` ≥ 2):
//!   `"misp-event|<profile id>|part|<k>"`;
//! * attribute: `"<event uuid>|<type>|<value>"` (reference `misp.md` §2.2): attribute uuids are
//!   unique across a whole MISP instance, so they must depend on the event, or the same IP in two
//!   profiles would be dropped from the second;
//! * event report: `"<event uuid>|report"`;
//! * default creator organisation: `"misp-org|<name>"`.
//!
//! The names never collide with the STIX ids of the transform (same namespace, but those names
//! start with a STIX type).

use uuid::Uuid;

/// ctiport's own namespace (the value the transform uses for STIX ids).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6f1b_3c2e_9a4d_4e57_b1c8_2d7e_5f90_a3b6);

fn v5(name: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The uuid of a profile's event; `part` 1 is the profile's main event.
pub fn event_uuid(profile_id: &str, part: u32) -> Uuid {
    if part <= 1 {
        v5(&format!("misp-event|{profile_id}"))
    } else {
        v5(&format!("misp-event|{profile_id}|part|{part}"))
    }
}

/// The uuid of an attribute: unique per event, type and (normalized) value.
pub fn attribute_uuid(event: Uuid, misp_type: &str, value: &str) -> Uuid {
    v5(&format!("{event}|{misp_type}|{value}"))
}

pub fn report_uuid(event: Uuid) -> Uuid {
    v5(&format!("{event}|report"))
}

/// The creator organisation's uuid when `--misp-org-uuid` is not given.
pub fn org_uuid(name: &str) -> Uuid {
    v5(&format!("misp-org|{name}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uuids_are_lower_case_version_5() {
        let event = event_uuid("cerium", 1);
        let text = event.to_string();
        assert_eq!(text, text.to_lowercase());
        assert_eq!(event.get_version_num(), 5);
        assert_ne!(event_uuid("cerium", 2), event);
        assert_eq!(event_uuid("cerium", 0), event);
    }

    proptest! {
        #[test]
        fn attribute_uuids_are_deterministic_and_depend_on_event_type_and_value(
            profile_a in ".{1,20}", profile_b in ".{1,20}",
            value_a in ".{1,40}", value_b in ".{1,40}",
        ) {
            let (event_a, event_b) = (event_uuid(&profile_a, 1), event_uuid(&profile_b, 1));
            let a = attribute_uuid(event_a, "domain", &value_a);
            prop_assert_eq!(a, attribute_uuid(event_uuid(&profile_a, 1), "domain", &value_a));
            prop_assert_eq!(a.get_version_num(), 5);
            // The same value in another profile's event is another attribute.
            if profile_a != profile_b {
                prop_assert_ne!(a, attribute_uuid(event_b, "domain", &value_a));
            }
            prop_assert_ne!(a, attribute_uuid(event_a, "hostname", &value_a));
            if value_a != value_b {
                prop_assert_ne!(a, attribute_uuid(event_a, "domain", &value_b));
            }
            prop_assert_ne!(a, event_a);
        }
    }
}
