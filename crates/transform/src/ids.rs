//! Deterministic STIX identifiers: the same input gives the same ids on any machine.
//!
//! * SDOs and SROs: UUIDv5 in ctiport's own namespace, name = `"<type>|<natural key>"`. The type is
//!   part of the name because a UUID must be unique across all of a producer's objects. (STIX
//!   forbids the SCO namespace here; the validator's UUIDv4 advice `{103}` is disabled on purpose.)
//! * SCOs: UUIDv5 in the OASIS namespace over the RFC 8785 (JCS) serialization of the
//!   ID-contributing properties, exactly as STIX §2.9 and python-stix2 compute it.

use serde_json::{Map, Value};
use uuid::Uuid;

/// ctiport's namespace for SDO and SRO ids. Never change it: every id ever emitted depends on it.
pub const CTIPORT_NAMESPACE: Uuid = Uuid::from_u128(0x6f1b_3c2e_9a4d_4e57_b1c8_2d7e_5f90_a3b6);

/// The namespace STIX 2.1 prescribes for SCO ids.
pub const OASIS_SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00ab_edb4_aa42_466c_9c01_fed2_3315_a9b7);

/// Id of an SDO or SRO of `object_type` identified by `natural_key`.
pub fn sdo_id(object_type: &str, natural_key: &str) -> String {
    let name = format!("{object_type}|{natural_key}");
    format!(
        "{object_type}--{}",
        Uuid::new_v5(&CTIPORT_NAMESPACE, name.as_bytes())
    )
}

/// Id of the `indicates`/`targets`/… relationship between two objects.
pub fn relationship_id(relationship_type: &str, source_ref: &str, target_ref: &str) -> String {
    sdo_id(
        "relationship",
        &format!("{relationship_type}|{source_ref}|{target_ref}"),
    )
}

/// Id of an SCO from its ID-contributing properties.
pub fn sco_id(object_type: &str, id_properties: &Map<String, Value>) -> String {
    let name = canonical_json(&Value::Object(id_properties.clone()));
    format!(
        "{object_type}--{}",
        Uuid::new_v5(&OASIS_SCO_NAMESPACE, name.as_bytes())
    )
}

/// The 128-bit UUID inside a STIX id, used as a compact key in per-run sets.
pub fn uuid_key(stix_id: &str) -> Option<u128> {
    let (_, uuid) = stix_id.split_once("--")?;
    Uuid::parse_str(uuid).ok().map(|u| u.as_u128())
}

/// RFC 8785 canonical JSON for the values SCO ids are made of: objects with sorted keys, strings
/// escaped as JCS requires (serde_json's string escaping is the JCS one), integers. Floats do not
/// occur among ID-contributing properties.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            // JCS sorts by UTF-16 code units; for the ASCII keys of STIX properties that is byte order.
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    /// Worked values from the STIX spec (§2.9) and python-stix2, recorded in the reference.
    #[test]
    fn sco_ids_match_the_spec_and_python_stix2() {
        for (object_type, properties, expected) in [
            (
                "ipv4-addr",
                json!({"value": "198.51.100.3"}),
                "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4",
            ),
            (
                "domain-name",
                json!({"value": "evil.example.com"}),
                "domain-name--6262c8a9-ac28-50fe-a7df-f5923bb2ee14",
            ),
            (
                "domain-name",
                json!({"value": "münchen.example"}),
                "domain-name--ec84ab45-ecbb-5f68-840c-b4b7d70cb21d",
            ),
            (
                "email-addr",
                json!({"value": "phish@example.com"}),
                "email-addr--219b18b4-f723-5bf4-8691-f313d67ccf85",
            ),
            (
                "ipv6-addr",
                json!({"value": "2001:db8::1"}),
                "ipv6-addr--6469e3a9-b053-5e34-a025-9396ae051d26",
            ),
            (
                "file",
                json!({"hashes": {"SHA-256": "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"}}),
                "file--02c74237-f6bc-5e2e-bcbe-e9bf3d69ac64",
            ),
            (
                "x509-certificate",
                json!({"hashes": {"SHA-1": "0123456789abcdef0123456789abcdef01234567"}}),
                "x509-certificate--9383119f-d6ba-5dce-b6a6-ae532a9975e7",
            ),
        ] {
            assert_eq!(sco_id(object_type, &props(properties)), expected);
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_keeps_utf8() {
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": ["x", "ü"]})),
            r#"{"a":["x","ü"],"b":1}"#
        );
        assert_eq!(
            canonical_json(&json!({"v": "a\"b\\c\u{1}"})),
            r#"{"v":"a\"b\\c\u0001"}"#
        );
    }

    fn is_stix_id(id: &str, object_type: &str) -> bool {
        let Some((prefix, uuid)) = id.split_once("--") else {
            return false;
        };
        let Ok(parsed) = Uuid::parse_str(uuid) else {
            return false;
        };
        prefix == object_type && parsed.get_version_num() == 5 && uuid == uuid.to_lowercase()
    }

    proptest! {
        #[test]
        fn sdo_ids_are_deterministic_lowercase_v5(key in ".*") {
            let id = sdo_id("indicator", &key);
            prop_assert_eq!(&id, &sdo_id("indicator", &key));
            prop_assert!(is_stix_id(&id, "indicator"), "{}", id);
        }

        #[test]
        fn the_type_is_part_of_the_name(key in ".*") {
            let a = uuid_key(&sdo_id("threat-actor", &key));
            let b = uuid_key(&sdo_id("intrusion-set", &key));
            prop_assert_ne!(a, b);
        }

        #[test]
        fn distinct_keys_give_distinct_ids(a in ".*", b in ".*") {
            prop_assume!(a != b);
            prop_assert_ne!(sdo_id("indicator", &a), sdo_id("indicator", &b));
        }

        #[test]
        fn sco_ids_are_v5_and_key_order_independent(value in ".*") {
            let mut forward = Map::new();
            forward.insert("value".into(), json!(value));
            forward.insert("name".into(), json!("x"));
            let mut backward = Map::new();
            backward.insert("name".into(), json!("x"));
            backward.insert("value".into(), json!(value));
            let id = sco_id("url", &forward);
            prop_assert_eq!(&id, &sco_id("url", &backward));
            prop_assert!(is_stix_id(&id, "url"));
        }
    }
}
