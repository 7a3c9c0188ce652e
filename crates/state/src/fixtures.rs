//! What the tests feed the store: encoded objects, and the mapped records that carry them.

use std::sync::Arc;

use ctiport_model::graph::{IntelProfile, ProfileKind};
use ctiport_model::record::{
    Emitted, Mapped, MappedIndicator, MappedProfile, ObservableType, Version,
};
use ctiport_model::stix::EncodedObject;
use serde_json::{Value, json};

/// The `created` of every fixture object.
pub(crate) const CREATED: &str = "2020-01-01T00:00:00.000Z";

/// An object with its type, id, dates and `properties`; its references are its `*_ref`s.
pub(crate) fn object(id: &str, modified: &str, properties: Value) -> EncodedObject {
    let object_type = id.split("--").next().unwrap();
    let mut json = json!({
        "type": object_type, "spec_version": "2.1", "id": id,
        "created": CREATED, "modified": modified,
    });
    json.as_object_mut()
        .unwrap()
        .extend(properties.as_object().unwrap().clone());
    let references = ctiport_model::stix::references(json.as_object().unwrap())
        .into_iter()
        .map(|(_, target)| target.to_owned())
        .collect::<Vec<_>>();
    EncodedObject {
        id: id.into(),
        object_type: object_type.into(),
        json: json.to_string().into(),
        references: references.into(),
    }
}

/// `object` as the mapping hands it on: met for the first time in the run, not yet versioned.
pub(crate) fn first(object: EncodedObject) -> Emitted {
    Emitted {
        object,
        first: true,
        version: Version::default(),
    }
}

/// The object `id`, without properties, in version `run`, first made in run `origin`.
pub(crate) fn versioned(id: &str, run: u32, origin: u32, first: bool) -> Emitted {
    Emitted {
        object: object(id, CREATED, json!({})),
        first,
        version: Version { run, origin },
    }
}

/// The STIX id of the tool a profile fixture maps to.
pub(crate) fn tool_id(profile_id: &str) -> String {
    format!("tool--{profile_id}")
}

/// A tool profile's record: the tool, named `name`.
pub(crate) fn profile(profile_id: &str, name: &str) -> Mapped {
    let profile =
        IntelProfile::from_json(json!({"id": profile_id, "kind": "tool", "title": name})).unwrap();
    Mapped::Profile(MappedProfile {
        profile_id: profile_id.into(),
        title: name.into(),
        kind: ProfileKind::Tool,
        indicated_ref: tool_id(profile_id),
        profile: Arc::new(profile),
        objects: vec![first(object(
            &tool_id(profile_id),
            CREATED,
            json!({"name": name}),
        ))],
    })
}

/// A domain indicator of the profile: the indicator, then its `indicates`.
pub(crate) fn indicator(profile_id: &str, domain: &str) -> Mapped {
    let stix_id = format!("indicator--{domain}");
    let pattern = format!("[domain-name:value = '{domain}']");
    let relationship = object(
        &format!("relationship--{domain}-{profile_id}"),
        CREATED,
        json!({"relationship_type": "indicates", "source_ref": stix_id,
               "target_ref": tool_id(profile_id)}),
    );
    Mapped::Indicator(MappedIndicator {
        indicator_id: format!("{profile_id}/{domain}"),
        profile_id: profile_id.into(),
        observable_type: ObservableType::Domain,
        value: domain.into(),
        source: None,
        first_seen: None,
        last_seen: None,
        confidence: None,
        host: None,
        stix_id: stix_id.clone(),
        objects: vec![
            first(object(&stix_id, CREATED, json!({"pattern": pattern}))),
            first(relationship),
        ],
    })
}
