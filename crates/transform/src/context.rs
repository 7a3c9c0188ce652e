//! What every mapped object shares: the producer identity, the marking, the tables and options.

use ctiport_model::stix::{Header, Identity, Relationship, StixObject};
use ctiport_model::timestamp::Timestamp;
use serde_json::Value;

use crate::ids::{relationship_id, sdo_id};
use crate::mappings::Mappings;
use crate::options::{MappingOptions, TLP_LEVELS};

pub struct Context {
    pub options: MappingOptions,
    pub mappings: Mappings,
    pub producer: StixObject,
    pub marking: StixObject,
}

impl Context {
    pub fn new(options: MappingOptions, mappings: Mappings) -> Result<Self, String> {
        if !TLP_LEVELS.contains(&options.tlp.as_str()) {
            return Err(format!(
                "'{}' is not a TLP level (one of {})",
                options.tlp,
                TLP_LEVELS.join(", ")
            ));
        }
        let marking_definition = mappings
            .marking(&options.marking_set, &options.tlp)?
            .clone();
        let marking_id = marking_definition
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let marking = StixObject::Marking {
            id: marking_id,
            definition: marking_definition,
        };
        let producer_id = sdo_id("identity", &format!("producer|{}", options.producer_name));
        let mut header = Header::new(
            "identity",
            producer_id,
            Timestamp::epoch(),
            Timestamp::epoch(),
        );
        header.object_marking_refs = Vec::new();
        let producer = StixObject::Identity(Identity {
            header,
            name: options.producer_name.clone(),
            description: Some(
                "Producer of the intel profiles and indicators exported from the Microsoft Graph Threat Intelligence API by ctiport."
                    .into(),
            ),
            identity_class: "organization",
            sectors: Vec::new(),
            contact_information: None,
        });
        Ok(Context {
            options,
            mappings,
            producer,
            marking,
        })
    }

    /// A header for an object this producer creates, carrying the producer and the marking.
    pub fn header(
        &self,
        object_type: &'static str,
        id: String,
        created: Timestamp,
        modified: Timestamp,
    ) -> Header {
        let mut header = Header::new(object_type, id, created, modified);
        header.created_by_ref = Some(self.producer.id().to_owned());
        header.object_marking_refs = vec![self.marking.id().to_owned()];
        header
    }

    /// A relationship of ctiport's, its id derived from its type and ends.
    pub fn relationship(
        &self,
        relationship_type: &'static str,
        source: &str,
        target: &str,
        created: Timestamp,
        modified: Timestamp,
    ) -> StixObject {
        let id = relationship_id(relationship_type, source, target);
        StixObject::Relationship(Relationship {
            header: self.header("relationship", id, created, modified),
            relationship_type,
            source_ref: source.to_owned(),
            target_ref: target.to_owned(),
        })
    }

    /// The objects every output starts with.
    pub fn preamble(&self) -> [&StixObject; 2] {
        [&self.producer, &self.marking]
    }
}
