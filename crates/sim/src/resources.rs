//! Answers for each Graph resource, from the in-memory store: collections with paging and the
//! OData options of §4, single entities with `@odata.context` (§5).

use std::borrow::Cow;

use axum::http::StatusCode;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::data::Store;
use crate::json::{push_string, select_members, with_context};
use crate::listing::Shape;
use crate::odata::{Filter, Opt, Query, compare_optional, next_link, page_of};
use crate::respond::Reply;
use crate::target::Resource;

/// `intelligenceProfile` properties (v1.0, plus beta's `sponsorStates`), for `$select` checks.
pub const PROFILE_PROPERTIES: &[&str] = &[
    "id",
    "kind",
    "title",
    "firstActiveDateTime",
    "aliases",
    "targets",
    "countriesOrRegionsOfOrigin",
    "sponsorStates",
    "summary",
    "description",
    "tradecraft",
];

/// `intelligenceProfileIndicator` properties; `artifact` is a navigation property that the
/// service nevertheless inlines by default (§4.4).
pub const INDICATOR_PROPERTIES: &[&str] = &[
    "id",
    "source",
    "firstSeenDateTime",
    "lastSeenDateTime",
    "artifact",
];

const LIST_OPTIONS: &[Opt] = &[
    Opt::Top,
    Opt::Skip,
    Opt::Count,
    Opt::Select,
    Opt::Filter,
    Opt::OrderBy,
    Opt::Search,
];
const INDICATOR_LIST_OPTIONS: &[Opt] = &[
    Opt::Top,
    Opt::Skip,
    Opt::Count,
    Opt::Select,
    Opt::Expand,
    Opt::OrderBy,
];

/// Where the request came in, for nextLinks and `@odata.context`.
#[derive(Clone, Debug)]
pub struct Ctx<'a> {
    /// `--public-url` or `http://127.0.0.1:<port>`, without a trailing slash.
    pub base: &'a str,
    /// `v1.0` or `beta`.
    pub version: &'a str,
    /// The request path exactly as sent (still percent-encoded).
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    pub page_size: u64,
    pub max_top: u64,
    /// How this answer deviates from the store (`--list-limit`, `--uneven-pages`, `--drift`).
    pub shape: Shape,
}

impl Ctx<'_> {
    fn metadata(&self, fragment: &str) -> String {
        format!(
            "{}/{}/$metadata#security/threatIntelligence/{fragment}",
            self.base, self.version
        )
    }
}

/// A failure to report with the Graph error envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl GraphError {
    pub fn invalid_request(message: String) -> Self {
        GraphError {
            status: StatusCode::BAD_REQUEST,
            code: "invalidRequest",
            message,
        }
    }

    fn not_found(what: &str, id: &str) -> Self {
        GraphError {
            status: StatusCode::NOT_FOUND,
            code: "itemNotFound",
            message: format!("The {what} '{id}' was not found."),
        }
    }
}

/// Answers a GET for `resource`.
pub fn answer(store: &Store, resource: &Resource, ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    let query = Query::parse(ctx.raw_query).map_err(GraphError::invalid_request)?;
    let q = &query;
    let invalid = GraphError::invalid_request;
    match resource {
        Resource::ProfileList => {
            q.allow_only(LIST_OPTIONS).map_err(invalid)?;
            let chosen = chosen_profiles(store, q, &ctx.shape)?;
            let profiles = store.profiles();
            let last = profiles.len().checked_sub(1);
            let changed = ctx
                .shape
                .changed_last(last.map(|i| profiles[i].entry.raw.as_ref()), "title");
            let context = ctx.metadata(&format!("intelProfiles{}", q.context_projection()));
            Ok(render_page(
                ctx,
                q,
                &context,
                chosen.len(),
                |k| match &changed {
                    Some(changed) if Some(chosen[k]) == last => changed,
                    _ => &profiles[chosen[k]].entry.raw,
                },
            ))
        }
        Resource::ProfileCount => {
            q.allow_only(&[Opt::Filter, Opt::Search]).map_err(invalid)?;
            Ok(count_reply(chosen_profiles(store, q, &ctx.shape)?.len()))
        }
        Resource::Profile(id) => {
            q.allow_only(&[Opt::Select]).map_err(invalid)?;
            q.check_names("intelligenceProfile", Some(PROFILE_PROPERTIES), &[])
                .map_err(invalid)?;
            let profile = store
                .profile(id)
                .ok_or_else(|| GraphError::not_found("intelligence profile", id))?;
            let context = ctx.metadata(&format!("intelProfiles{}/$entity", q.context_projection()));
            Ok(entity(&profile.entry.raw, q, &context))
        }
        Resource::ProfileIndicators(id) => {
            q.allow_only(INDICATOR_LIST_OPTIONS).map_err(invalid)?;
            q.check_names(
                "intelligenceProfileIndicator",
                Some(INDICATOR_PROPERTIES),
                &["artifact"],
            )
            .map_err(invalid)?;
            let list = store
                .indicators_of(id)
                .ok_or_else(|| GraphError::not_found("intelligence profile", id))?;
            let context = ctx.metadata(&format!(
                "intelProfiles('{}')/indicators{}",
                id.replace('\'', "''"),
                q.context_projection()
            ));
            let n = list.len();
            let changed = ctx.shape.changed_last(
                list.last().map(|i| i.entry.raw.as_ref()),
                "lastSeenDateTime",
            );
            let record = |position: usize| match &changed {
                Some(changed) if position + 1 == n => changed,
                _ => &list[position].entry.raw,
            };
            match &q.orderby {
                None => Ok(render_page(ctx, q, &context, n, |k| {
                    record(ctx.shape.position(k, n))
                })),
                Some(order) if order.property == "firstSeenDateTime" => {
                    let mut chosen: Vec<usize> = (0..n).map(|k| ctx.shape.position(k, n)).collect();
                    chosen.sort_by(|&a, &b| {
                        compare_optional(
                            list[a].first_seen.as_deref(),
                            list[b].first_seen.as_deref(),
                            order.descending,
                        )
                    });
                    Ok(render_page(ctx, q, &context, n, |k| record(chosen[k])))
                }
                Some(order) => Err(invalid(format!(
                    "$orderby is supported on firstSeenDateTime only, not '{}'.",
                    order.property
                ))),
            }
        }
        Resource::ProfileIndicatorCount(id) => {
            q.allow_only(&[]).map_err(invalid)?;
            let list = store
                .indicators_of(id)
                .ok_or_else(|| GraphError::not_found("intelligence profile", id))?;
            Ok(count_reply(list.len()))
        }
        Resource::Indicator(id) => {
            q.allow_only(&[Opt::Select, Opt::Expand]).map_err(invalid)?;
            q.check_names(
                "intelligenceProfileIndicator",
                Some(INDICATOR_PROPERTIES),
                &["artifact"],
            )
            .map_err(invalid)?;
            let indicator = store
                .indicator(id)
                .ok_or_else(|| GraphError::not_found("intelligence profile indicator", id))?;
            let context = ctx.metadata(&format!(
                "intelligenceProfileIndicators{}/$entity",
                q.context_projection()
            ));
            Ok(entity(&indicator.entry.raw, q, &context))
        }
        Resource::Host(id) => {
            q.allow_only(&[Opt::Select]).map_err(invalid)?;
            let host = store
                .host(id)
                .ok_or_else(|| GraphError::not_found("host", id))?;
            let context = ctx.metadata(&format!("hosts{}/$entity", q.context_projection()));
            Ok(entity(host, q, &context))
        }
        Resource::HostReputation(id) => {
            q.allow_only(&[Opt::Select]).map_err(invalid)?;
            let reputation = store
                .reputation(id)
                .ok_or_else(|| GraphError::not_found("host reputation of", id))?;
            let context = ctx.metadata(&format!(
                "hosts('{}')/reputation{}/$entity",
                id.replace('\'', "''"),
                q.context_projection()
            ));
            Ok(entity(reputation, q, &context))
        }
        Resource::ListNotSupported(name) => Err(GraphError {
            status: StatusCode::NOT_IMPLEMENTED,
            code: "notSupported",
            message: format!("List retrieval is not yet supported for '{name}'."),
        }),
        Resource::Unknown(segment) => Err(GraphError {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequest",
            message: format!("Resource not found for the segment '{segment}'."),
        }),
    }
}

/// Indices of the listed profiles (the first `--list-limit`, in file order as drift left it)
/// that pass `$filter` and `$search`, in `$orderby` order.
fn chosen_profiles(store: &Store, q: &Query, shape: &Shape) -> Result<Vec<usize>, GraphError> {
    q.check_names("intelligenceProfile", Some(PROFILE_PROPERTIES), &[])
        .map_err(GraphError::invalid_request)?;
    let profiles = store.profiles();
    let search = q.search.as_ref().map(|s| s.to_lowercase());
    let n = profiles.len();
    let listed = shape.limit.map_or(n, |limit| limit.min(n));
    let mut chosen: Vec<usize> = (0..listed)
        .map(|k| shape.position(k, n))
        .filter(|&i| match &q.filter {
            Some(Filter::KindEq(kind)) => profiles[i].kind.as_deref() == Some(kind.as_str()),
            None => true,
        })
        .filter(|&i| {
            search
                .as_deref()
                .is_none_or(|term| content_matches(&profiles[i].entry.raw, term))
        })
        .collect();
    if let Some(order) = &q.orderby {
        if order.property != "title" {
            return Err(GraphError::invalid_request(format!(
                "$orderby is supported on title only, not '{}'.",
                order.property
            )));
        }
        chosen.sort_by(|&a, &b| {
            compare_optional(
                profiles[a].title.as_deref(),
                profiles[b].title.as_deref(),
                order.descending,
            )
        });
    }
    Ok(chosen)
}

/// `$search` on profiles: a case-insensitive substring of summary, description or tradecraft
/// content (§4.3).
fn content_matches(raw: &RawValue, term_lower: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(raw.get()) else {
        return false;
    };
    let object = match value.get("value") {
        Some(inner @ Value::Object(_)) if value.get("id").is_none() => inner,
        _ => &value,
    };
    ["summary", "description", "tradecraft"]
        .iter()
        .any(|field| {
            object
                .get(field)
                .and_then(|f| f.get("content"))
                .and_then(Value::as_str)
                .is_some_and(|content| content.to_lowercase().contains(term_lower))
        })
}

/// One record as it goes out: verbatim, or with unselected members dropped.
fn projected<'r>(raw: &'r RawValue, q: &Query) -> Cow<'r, str> {
    if q.select.is_none() {
        return Cow::Borrowed(raw.get());
    }
    match select_members(raw, &|member| q.keeps(member)) {
        Some(text) => Cow::Owned(text),
        None => Cow::Borrowed(raw.get()),
    }
}

fn entity(raw: &RawValue, q: &Query, context: &str) -> Reply {
    Reply::ok(with_context(&projected(raw, q), context))
}

fn count_reply(n: usize) -> Reply {
    Reply {
        content_type: "text/plain;charset=utf-8",
        ..Reply::ok(n.to_string())
    }
}

/// A collection page: `@odata.context`, `@odata.count` (with `$count=true`, on every page),
/// `@odata.nextLink` (absent on the last page) and `value`.
fn render_page<'r>(
    ctx: &Ctx<'_>,
    q: &Query,
    context: &str,
    total: usize,
    item: impl Fn(usize) -> &'r RawValue,
) -> Reply {
    let top = q.top.unwrap_or(ctx.page_size).min(ctx.max_top);
    let skip = q.skip.unwrap_or(0);
    let page = page_of(total, top, ctx.shape.page_size(top), skip);
    let mut body = String::from("{\"@odata.context\":");
    push_string(&mut body, context);
    if q.count {
        body.push_str(&format!(",\"@odata.count\":{total}"));
    }
    if let Some((top, skip)) = page.next {
        body.push_str(",\"@odata.nextLink\":");
        push_string(
            &mut body,
            &next_link(ctx.base, ctx.raw_path, ctx.raw_query, top, skip),
        );
    }
    body.push_str(",\"value\":[");
    for k in page.start..page.end {
        if k > page.start {
            body.push(',');
        }
        body.push_str(&projected(item(k), q));
    }
    body.push_str("]}");
    Reply::page(body)
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;
    use crate::target::parse;

    fn store() -> Store {
        let mut store = Store::default();
        let raw = |s: String| RawValue::from_string(s).expect("json");
        for (i, kind) in ["actor", "tool", "actor", "actor", "tool"]
            .iter()
            .enumerate()
        {
            store.add_profile(raw(format!(
                r##"{{"@odata.type":"#p","id":"p{i}","kind":"{kind}","title":"T{}","description":{{"content":"needle{i}"}}}}"##,
                9 - i
            )));
        }
        for j in 0..7 {
            store.add_indicator(
                "p0",
                raw(format!(
                    r#"{{"id":"i{j}","source":"microsoft","firstSeenDateTime":"2020-01-0{}T00:00:00Z","artifact":{{"id":"h{j}"}}}}"#,
                    7 - j
                )),
            );
        }
        store
    }

    fn get(store: &Store, path_and_query: &str) -> Result<Value, GraphError> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let raw_path = format!("/v1.0/security/threatIntelligence/{path}");
        let ctx = Ctx {
            base: "http://sim",
            version: "v1.0",
            raw_path: &raw_path,
            raw_query: query,
            page_size: 2,
            max_top: 3,
            shape: Shape::default(),
        };
        let reply = answer(store, &parse(path), &ctx)?;
        Ok(serde_json::from_str(&reply.body).expect("json body"))
    }

    fn ids(v: &Value) -> Vec<String> {
        v["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["id"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn pages_follow_next_links_to_the_end() {
        let s = store();
        let first = get(&s, "intelProfiles?$count=true").expect("ok");
        assert_eq!(ids(&first), ["p0", "p1"]);
        assert_eq!(first["@odata.count"], 5);
        assert_eq!(
            first["@odata.context"],
            "http://sim/v1.0/$metadata#security/threatIntelligence/intelProfiles"
        );
        assert_eq!(
            first["@odata.nextLink"],
            "http://sim/v1.0/security/threatIntelligence/intelProfiles?$count=true&$top=2&$skip=2"
        );
        let last = get(&s, "intelProfiles?$count=true&$top=2&$skip=4").expect("ok");
        assert_eq!(ids(&last), ["p4"]);
        assert!(last.get("@odata.nextLink").is_none());
        assert_eq!(last["@odata.count"], 5);
        let past = get(&s, "intelProfiles?$skip=10").expect("ok");
        assert_eq!(past["value"], serde_json::json!([]));
        assert!(past.get("@odata.count").is_none());
    }

    #[test]
    fn top_is_clamped() {
        let s = store();
        let v = get(&s, "intelProfiles?$top=1000").expect("ok");
        assert_eq!(ids(&v).len(), 3);
        assert!(
            v["@odata.nextLink"]
                .as_str()
                .unwrap_or("")
                .contains("$top=3&$skip=3")
        );
    }

    #[test]
    fn filter_search_orderby() {
        let s = store();
        let v = get(&s, "intelProfiles?$filter=kind%20eq%20'tool'&$top=3").expect("ok");
        assert_eq!(ids(&v), ["p1", "p4"]);
        let v = get(&s, "intelProfiles?$orderby=title&$top=3").expect("ok");
        assert_eq!(ids(&v), ["p4", "p3", "p2"]);
        let v = get(&s, "intelProfiles?$search=%22NEEDLE3%22").expect("ok");
        assert_eq!(ids(&v), ["p3"]);
        assert_eq!(
            get(&s, "intelProfiles?$filter=title%20eq%20'x'").map_err(|e| e.code),
            Err("invalidRequest")
        );
        assert_eq!(
            get(&s, "intelProfiles?$orderby=kind").map_err(|e| e.code),
            Err("invalidRequest")
        );
    }

    #[test]
    fn select_drops_artifact_and_keeps_annotations() {
        let s = store();
        let v = get(&s, "intelProfiles/p0/indicators?$select=id&$top=1").expect("ok");
        assert_eq!(v["value"][0], serde_json::json!({"id": "i0"}));
        assert!(
            v["@odata.nextLink"]
                .as_str()
                .unwrap_or("")
                .contains("$select=id")
        );
        let v = get(
            &s,
            "intelProfiles/p0/indicators?$select=id&$expand=artifact&$top=1",
        )
        .expect("ok");
        assert_eq!(v["value"][0]["artifact"]["id"], "h0");
        let v = get(&s, "intelProfiles('p1')?$select=title").expect("ok");
        assert_eq!(v["title"], "T8");
        assert_eq!(v["@odata.type"], "#p");
        assert!(v.get("id").is_none() && v.get("kind").is_none());
        assert_eq!(
            v["@odata.context"],
            "http://sim/v1.0/$metadata#security/threatIntelligence/intelProfiles(title)/$entity"
        );
        assert!(get(&s, "intelProfiles?$select=nope").is_err());
    }

    #[test]
    fn indicators_order_and_errors() {
        let s = store();
        let v = get(
            &s,
            "intelProfiles/p0/indicators?$orderby=firstSeenDateTime%20asc&$top=3",
        )
        .expect("ok");
        assert_eq!(ids(&v), ["i6", "i5", "i4"]);
        let v = get(&s, "intelProfiles/p3/indicators").expect("ok");
        assert_eq!(v["value"], serde_json::json!([]));
        assert_eq!(
            get(&s, "intelProfiles/zz/indicators").map_err(|e| e.code),
            Err("itemNotFound")
        );
        assert_eq!(
            get(&s, "intelProfiles/p0/indicators?$filter=x").map_err(|e| e.code),
            Err("invalidRequest")
        );
        assert_eq!(
            get(&s, "intelProfiles/p0/indicators?$top=-3").map_err(|e| e.code),
            Err("invalidRequest")
        );
        let v = get(&s, "intelligenceProfileIndicators/i3").expect("ok");
        assert_eq!(v["id"], "i3");
        assert!(
            v["@odata.context"]
                .as_str()
                .unwrap_or("")
                .ends_with("intelligenceProfileIndicators/$entity")
        );
        assert_eq!(
            get(&s, "hosts/none/reputation").map_err(|e| e.code),
            Err("itemNotFound")
        );
        assert_eq!(
            get(&s, "hosts").map_err(|e| e.status),
            Err(StatusCode::NOT_IMPLEMENTED)
        );
    }
}
