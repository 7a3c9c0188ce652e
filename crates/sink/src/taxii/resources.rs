//! The TAXII 2.1 resources the sink reads (TAXII §4.2 API root, §5.2 collection, §4.3 status),
//! leniently: unknown properties are ignored and optional lists default to empty.

use serde::Deserialize;

/// The media type of every TAXII 2.1 request and response (TAXII §1.6.8).
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";

#[derive(Clone, Debug, Deserialize)]
pub struct ApiRoot {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub versions: Vec<String>,
    pub max_content_length: Option<u64>,
}

impl ApiRoot {
    /// Whether `versions` lists TAXII 2.1 (spaces and case aside, as medallion accepts them).
    pub fn speaks_taxii_21(&self) -> bool {
        self.versions
            .iter()
            .any(|v| same_media_type(v, TAXII_MEDIA_TYPE))
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Collection {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub can_read: bool,
    #[serde(default)]
    pub can_write: bool,
    #[serde(default)]
    pub media_types: Vec<String>,
}

impl Collection {
    /// Whether the collection takes STIX 2.1 (an absent list means no restriction).
    pub fn accepts_stix_21(&self) -> bool {
        self.media_types.is_empty()
            || self
                .media_types
                .iter()
                .any(|m| same_media_type(m, "application/stix+json;version=2.1"))
    }
}

/// One entry of `successes`, `failures` or `pendings`.
#[derive(Clone, Debug, Deserialize)]
pub struct StatusDetail {
    pub id: String,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub success_count: u64,
    #[serde(default)]
    pub failure_count: u64,
    #[serde(default)]
    pub pending_count: u64,
    #[serde(default)]
    pub successes: Vec<StatusDetail>,
    #[serde(default)]
    pub failures: Vec<StatusDetail>,
    #[serde(default)]
    pub pendings: Vec<StatusDetail>,
}

impl Status {
    pub fn is_pending(&self) -> bool {
        self.status.eq_ignore_ascii_case("pending")
    }
}

/// A page of `GET …/objects/`.
#[derive(Clone, Debug, Deserialize)]
pub struct ObjectsPage {
    #[serde(default)]
    pub objects: Vec<serde_json::Value>,
    #[serde(default)]
    pub more: bool,
    #[serde(default)]
    pub next: Option<String>,
}

/// The `title`/`description` of a TAXII error message (TAXII §3.6), for error texts.
pub fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorMessage {
        #[serde(default)]
        title: String,
        #[serde(default)]
        description: String,
    }
    match serde_json::from_slice::<ErrorMessage>(body) {
        Ok(m) if !m.description.is_empty() => format!(": {}", m.description),
        Ok(m) if !m.title.is_empty() => format!(": {}", m.title),
        _ => String::new(),
    }
}

/// Media types compared without spaces and case, the way servers compare them.
fn same_media_type(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_medallion_resources() {
        let root: ApiRoot = serde_json::from_str(
            r#"{"description": "w", "max_content_length": 20000, "title": "Test API root",
                "versions": ["application/taxii+json; version=2.1"]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(root.speaks_taxii_21());
        assert_eq!(root.max_content_length, Some(20000));
        let old: ApiRoot = serde_json::from_str(
            r#"{"title":"x","versions":["application/taxii+json;version=2.0"]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!old.speaks_taxii_21());

        let status: Status = serde_json::from_str(
            r#"{"failure_count": 1, "failures": [{"id": "identity--1", "message": "Unable to process object",
                "version": "2024-05-01T00:00:00.000Z"}], "id": "a7e6", "pending_count": 0,
                "request_timestamp": "2026-11-23T19:05:52.954528Z", "status": "complete",
                "success_count": 0, "total_count": 1}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!status.is_pending());
        assert_eq!(status.failures[0].id, "identity--1");
        assert!(status.successes.is_empty());

        let collection: Collection = serde_json::from_str(
            r#"{"can_read": true, "can_write": false, "id": "91a7", "title": "read-only",
                "media_types": ["application/stix+json;version=2.1"]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!collection.can_write && collection.accepts_stix_21());
    }

    #[test]
    fn error_details_come_from_the_taxii_error_message() {
        assert_eq!(
            error_detail(br#"{"description": "Forbidden to write collection 'x'.", "http_status": "403", "title": "ProcessingError"}"#),
            ": Forbidden to write collection 'x'."
        );
        assert_eq!(error_detail(b"Unauthorized Access"), "");
    }
}
