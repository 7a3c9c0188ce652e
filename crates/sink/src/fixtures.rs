//! What the sinks' tests share: records as the mapper hands them over, MISP options, events and
//! attributes, and an in-process HTTP server for the stand-ins of the servers the pushing sinks
//! talk to.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use ctiport_model::graph::{FormattedContent, IndicatorSource, IntelProfile, ProfileKind};
use ctiport_model::record::{Mapped, MappedIndicator, MappedProfile, ObservableType};
use ctiport_model::timestamp::Timestamp;

use crate::misp::AttributeTable;
use crate::misp::config::{Distribution, MispOptions, Organisation};
use crate::misp::event::{Attribute, DISTRIBUTION_INHERIT, Event, EventReport, OrgRef, Tag};

/// A profile record with the graph profile behind it, first active on 2020-02-24.
pub fn profile(id: &str, title: &str, kind: ProfileKind) -> MappedProfile {
    let graph = IntelProfile {
        first_active: Timestamp::parse("2020-02-24T00:00:00Z"),
        ..IntelProfile::titled(id, kind.clone(), title)
    };
    MappedProfile {
        profile_id: id.into(),
        title: title.into(),
        kind,
        indicated_ref: format!("threat-actor--{id}"),
        profile: Arc::new(graph),
        objects: vec![],
    }
}

/// The record of the actor profile `Actor <id>`.
pub fn actor(id: &str) -> Mapped {
    Mapped::Profile(profile(id, &format!("Actor {id}"), ProfileKind::Actor))
}

/// The record of an actor profile whose summary is `summary`.
pub fn summarized(id: &str, title: &str, summary: &str) -> Mapped {
    let mut mapped = profile(id, title, ProfileKind::Actor);
    let mut graph = (*mapped.profile).clone();
    graph.summary = Some(FormattedContent {
        content: summary.into(),
        format: "text".into(),
    });
    mapped.profile = Arc::new(graph);
    Mapped::Profile(mapped)
}

/// An OSINT indicator `id` of a profile, seen from 2024-01-02 to 2024-03-01.
pub fn indicator(profile_id: &str, id: &str, observable: ObservableType, value: &str) -> Mapped {
    Mapped::Indicator(MappedIndicator {
        indicator_id: id.into(),
        profile_id: profile_id.into(),
        observable_type: observable,
        value: value.into(),
        source: Some(IndicatorSource::Osint),
        first_seen: Timestamp::parse("2024-01-02T03:04:05Z"),
        last_seen: Timestamp::parse("2024-03-01T00:00:00Z"),
        confidence: Some(50),
        host: None,
        stix_id: format!("indicator--{id}"),
        objects: vec![],
    })
}

/// The options of MISP events at TLP amber, created by `Example CTI Org`.
pub fn misp_options(distribution: Distribution, max_attributes: usize) -> MispOptions {
    MispOptions {
        distribution,
        org: Organisation::new("Example CTI Org", None),
        max_attributes,
        tlp: "amber".into(),
        table: AttributeTable::embedded().unwrap_or_else(|e| panic!("{e}")),
    }
}

/// An attribute whose uuid ends in `number`, first seen on 2024-01-02.
pub fn attribute(
    number: u64,
    misp_type: &str,
    value: &str,
    timestamp: u64,
    comment: &str,
) -> Attribute {
    Attribute {
        uuid: format!("00000000-0000-5000-8000-{number:012}"),
        misp_type: misp_type.into(),
        category: "Network activity".into(),
        value: value.into(),
        to_ids: true,
        comment: comment.into(),
        distribution: DISTRIBUTION_INHERIT.into(),
        timestamp: timestamp.to_string(),
        first_seen: Some("2024-01-02T03:04:05.000000+00:00".into()),
        last_seen: None,
        disable_correlation: false,
        deleted: false,
    }
}

/// The event of profile X with `attributes`, its `tlp` tag and, if given, its report.
pub fn event(attributes: Vec<Attribute>, timestamp: u64, report: Option<&str>, tlp: &str) -> Event {
    Event {
        uuid: "11111111-1111-5111-8111-111111111111".into(),
        info: "Threat actor profile: X".into(),
        date: "2024-01-01".into(),
        threat_level_id: "4".into(),
        analysis: "2".into(),
        distribution: "0".into(),
        published: false,
        timestamp: timestamp.to_string(),
        publish_timestamp: "0".into(),
        extends_uuid: String::new(),
        orgc: OrgRef {
            name: "Org".into(),
            uuid: "22222222-2222-5222-8222-222222222222".into(),
        },
        tags: vec![Tag {
            name: format!("tlp:{tlp}"),
            colour: None,
            local: false,
        }],
        attributes,
        reports: report
            .map(|content| EventReport {
                uuid: "33333333-3333-5333-8333-333333333333".into(),
                name: "X (MDTI intel profile)".into(),
                content: content.into(),
                distribution: DISTRIBUTION_INHERIT.into(),
                timestamp: timestamp.to_string(),
                deleted: false,
            })
            .into_iter()
            .collect(),
    }
}

/// The error of a result that should have failed, as text (empty when it did not fail).
pub fn error<T>(result: Result<T, impl std::fmt::Display>) -> String {
    result.err().map(|e| e.to_string()).unwrap_or_default()
}

/// Asserts that `error` names `cause` and does not show `secret`.
pub fn assert_names_without(error: &str, cause: &str, secret: &str) {
    assert!(error.contains(cause), "{error}");
    assert!(!error.contains(secret), "the secret leaked: {error}");
}

/// Serves `app` on a loopback port for the rest of the test; `http://127.0.0.1:<port>/`.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}/")
}

/// A request a stand-in received, read whole.
pub struct Received {
    pub method: Method,
    pub path: String,
    /// The query's pairs, decoded.
    pub query: HashMap<String, String>,
    headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub async fn read(request: Request) -> Self {
        let (parts, body) = request.into_parts();
        let query = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Received {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query,
            headers: parts.headers,
            body: axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default(),
        }
    }

    /// A header's value, or nothing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}
