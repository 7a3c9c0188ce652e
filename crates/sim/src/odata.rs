//! OData query options: parsing, paging, `@odata.nextLink`, `$select`, `$filter`, `$orderby`.
//!
//! Behaviour follows graph-ti-api.md §4: `$top`/`$skip` paging with an absolute nextLink that
//! repeats every original query option (§4.1, §4.2), `@odata.count` only with `$count=true`
//! (§4.5), `$select` that drops unselected fields including `artifact` (§4.3, §4.4),
//! `$filter=kind eq '…'` on profiles (§4.3), and 400 `invalidRequest` for malformed options (§10).

use std::cmp::Ordering;

/// A system query option the simulator understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    Top,
    Skip,
    Count,
    Select,
    Expand,
    Filter,
    OrderBy,
    Search,
}

impl Opt {
    fn parse(key: &str) -> Option<Opt> {
        // Graph treats system query option names case-insensitively (`$orderBy` appears in the docs).
        Some(match key.to_ascii_lowercase().as_str() {
            "$top" => Opt::Top,
            "$skip" => Opt::Skip,
            "$count" => Opt::Count,
            "$select" => Opt::Select,
            "$expand" => Opt::Expand,
            "$filter" => Opt::Filter,
            "$orderby" => Opt::OrderBy,
            "$search" => Opt::Search,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Opt::Top => "$top",
            Opt::Skip => "$skip",
            Opt::Count => "$count",
            Opt::Select => "$select",
            Opt::Expand => "$expand",
            Opt::Filter => "$filter",
            Opt::OrderBy => "$orderby",
            Opt::Search => "$search",
        }
    }
}

/// `$filter` expressions the simulator evaluates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `kind eq 'actor'`
    KindEq(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderBy {
    pub property: String,
    pub descending: bool,
}

/// The parsed query string of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub present: Vec<Opt>,
    pub top: Option<u64>,
    pub skip: Option<u64>,
    pub count: bool,
    pub select: Option<Vec<String>>,
    pub expand: Option<Vec<String>>,
    pub filter: Option<Filter>,
    pub orderby: Option<OrderBy>,
    pub search: Option<String>,
}

/// A malformed query: the message of the 400 `invalidRequest` answer.
pub type QueryError = String;

impl Query {
    /// Parses a raw (still percent-encoded) query string.
    pub fn parse(raw: Option<&str>) -> Result<Query, QueryError> {
        let mut query = Query::default();
        let Some(raw) = raw else {
            return Ok(query);
        };
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            if !key.starts_with('$') {
                // Custom (non-system) query options are ignored, as OData allows.
                continue;
            }
            let Some(opt) = Opt::parse(&key) else {
                return Err(format!("Query option '{key}' is not supported."));
            };
            if query.present.contains(&opt) {
                return Err(format!(
                    "Query option '{}' was specified more than once; it must be specified at most once.",
                    opt.name()
                ));
            }
            query.present.push(opt);
            let value = value.trim();
            match opt {
                Opt::Top => query.top = Some(non_negative(opt, value)?),
                Opt::Skip => query.skip = Some(non_negative(opt, value)?),
                Opt::Count => {
                    query.count = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(format!(
                                "Invalid value '{value}' for $count; expected true or false."
                            ));
                        }
                    }
                }
                Opt::Select => query.select = Some(name_list(opt, value)?),
                Opt::Expand => query.expand = Some(name_list(opt, value)?),
                Opt::Filter => query.filter = Some(parse_filter(value)?),
                Opt::OrderBy => query.orderby = Some(parse_orderby(value)?),
                Opt::Search => query.search = Some(parse_search(value)?),
            }
        }
        Ok(query)
    }

    /// Rejects options that the route does not support.
    pub fn allow_only(&self, allowed: &[Opt]) -> Result<(), QueryError> {
        match self.present.iter().find(|o| !allowed.contains(o)) {
            Some(opt) => Err(format!(
                "Query option '{}' is not allowed on this resource.",
                opt.name()
            )),
            None => Ok(()),
        }
    }

    /// Checks `$select` and `$expand` names against an entity's properties (`None` = any name).
    pub fn check_names(
        &self,
        type_name: &str,
        properties: Option<&[&str]>,
        expandable: &[&str],
    ) -> Result<(), QueryError> {
        if let (Some(select), Some(properties)) = (&self.select, properties) {
            for name in select {
                if name != "*" && !properties.contains(&name.as_str()) {
                    return Err(format!(
                        "Could not find a property named '{name}' on type 'microsoft.graph.security.{type_name}'."
                    ));
                }
            }
        }
        for name in self.expand.iter().flatten() {
            if !expandable.contains(&name.as_str()) {
                return Err(format!(
                    "Could not find a navigation property named '{name}' on type 'microsoft.graph.security.{type_name}'."
                ));
            }
        }
        Ok(())
    }

    /// Whether a member survives `$select` (`$expand`ed navigation properties always do;
    /// annotations such as `@odata.type` are not properties and are kept).
    pub fn keeps(&self, member: &str) -> bool {
        let Some(select) = &self.select else {
            return true;
        };
        member.starts_with('@')
            || select.iter().any(|s| s == "*" || s == member)
            || self.expand.iter().flatten().any(|e| e == member)
    }

    /// The `(a,b)` part of `@odata.context` for a `$select`.
    pub fn context_projection(&self) -> String {
        match &self.select {
            Some(names) => format!("({})", names.join(",")),
            None => String::new(),
        }
    }
}

fn non_negative(opt: Opt, value: &str) -> Result<u64, QueryError> {
    value.parse::<u64>().map_err(|_| {
        format!(
            "Invalid value '{value}' for {}; expected a non-negative integer.",
            opt.name()
        )
    })
}

fn name_list(opt: Opt, value: &str) -> Result<Vec<String>, QueryError> {
    let names: Vec<String> = value.split(',').map(|n| n.trim().to_owned()).collect();
    let valid = |n: &String| {
        n == "*"
            || (n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    };
    if names.iter().all(valid) {
        Ok(names)
    } else {
        Err(format!("Syntax error in {}: '{value}'.", opt.name()))
    }
}

/// `kind eq 'actor'`, optionally in parentheses; `''` escapes a quote inside the literal.
pub fn parse_filter(value: &str) -> Result<Filter, QueryError> {
    let error = || {
        format!(
            "Invalid $filter '{value}': only \"kind eq '<value>'\" is supported on this resource."
        )
    };
    let mut text = value.trim();
    while let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        text = inner.trim();
    }
    let (property, rest) = text.split_once(char::is_whitespace).ok_or_else(error)?;
    let (operator, literal) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(error)?;
    if property != "kind" || operator != "eq" {
        return Err(error());
    }
    let literal = literal.trim();
    let inner = literal
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .filter(|_| literal.len() >= 2)
        .ok_or_else(error)?;
    // Inside the literal every quote must be doubled.
    let mut unescaped = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return Err(error());
        }
        unescaped.push(c);
    }
    Ok(Filter::KindEq(unescaped))
}

/// `title`, `title asc`, `firstSeenDateTime desc` (one key).
pub fn parse_orderby(value: &str) -> Result<OrderBy, QueryError> {
    let mut words = value.split_whitespace();
    let error = || format!("Invalid $orderby '{value}'.");
    let property = words.next().ok_or_else(error)?;
    let descending = match words.next() {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("asc") => false,
        Some(d) if d.eq_ignore_ascii_case("desc") => true,
        Some(_) => return Err(error()),
    };
    if words.next().is_some() || property.contains(',') {
        return Err(format!(
            "Invalid $orderby '{value}': only one sort key is supported."
        ));
    }
    Ok(OrderBy {
        property: property.to_owned(),
        descending,
    })
}

fn parse_search(value: &str) -> Result<String, QueryError> {
    let term = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
        .trim();
    if term.is_empty() {
        Err("$search needs a search term.".into())
    } else {
        Ok(term.to_owned())
    }
}

/// OData sort order for optional strings: nulls first when ascending.
pub fn compare_optional(a: Option<&str>, b: Option<&str>, descending: bool) -> Ordering {
    let order = a.cmp(&b);
    if descending { order.reverse() } else { order }
}

/// The slice of a result set that one page shows, and the next page if there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub start: usize,
    pub end: usize,
    /// `(top, skip)` of the next page.
    pub next: Option<(u64, u64)>,
}

/// `top` is already clamped; `top == 0` gives an empty page without a nextLink (a nextLink that
/// never advances would make a client loop forever).
pub fn page(total: usize, top: u64, skip: u64) -> Page {
    page_of(total, top, top, skip)
}

/// A page of `size` records (at most `top`) whose nextLink asks for `top` again. A page of 0
/// records before the end links to the same `$skip`: the next answer draws its size anew.
pub fn page_of(total: usize, top: u64, size: u64, skip: u64) -> Page {
    let total_u64 = total as u64;
    let start = skip.min(total_u64);
    let end = skip.saturating_add(size.min(top)).min(total_u64);
    let next = (top > 0 && end < total_u64).then_some((top, end));
    Page {
        start: start as usize,
        end: end as usize,
        next,
    }
}

/// An absolute nextLink: `base` + the request path as sent + every original query option in
/// its original order and spelling, with `$top` and `$skip` replaced (or appended).
pub fn next_link(
    base: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    top: u64,
    skip: u64,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    let (mut saw_top, mut saw_skip) = (false, false);
    for piece in raw_query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let key = url::form_urlencoded::parse(piece.as_bytes())
            .next()
            .map(|(k, _)| k.to_ascii_lowercase())
            .unwrap_or_default();
        match key.as_str() {
            "$top" if !saw_top => {
                saw_top = true;
                parts.push(format!("$top={top}"));
            }
            "$skip" if !saw_skip => {
                saw_skip = true;
                parts.push(format!("$skip={skip}"));
            }
            "$top" | "$skip" => {}
            _ => parts.push(piece.to_owned()),
        }
    }
    if !saw_top {
        parts.push(format!("$top={top}"));
    }
    if !saw_skip {
        parts.push(format!("$skip={skip}"));
    }
    format!(
        "{}{raw_path}?{}",
        base.trim_end_matches('/'),
        parts.join("&")
    )
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_options() {
        let q = Query::parse(Some(
            "$count=true&$top=10&%24skip=20&$select=id,%20title&$filter=kind%20eq%20%27actor%27&$orderby=title+desc&$expand=artifact&foo=bar",
        ))
        .expect("valid");
        assert_eq!(q.top, Some(10));
        assert_eq!(q.skip, Some(20));
        assert!(q.count);
        assert_eq!(q.select, Some(vec!["id".into(), "title".into()]));
        assert_eq!(q.filter, Some(Filter::KindEq("actor".into())));
        assert_eq!(
            q.orderby,
            Some(OrderBy {
                property: "title".into(),
                descending: true
            })
        );
        assert_eq!(q.expand, Some(vec!["artifact".into()]));
        assert_eq!(Query::parse(None), Ok(Query::default()));
    }

    #[test]
    fn rejects_malformed_options() {
        for bad in [
            "$top=-1",
            "$top=ten",
            "$top=",
            "$skip=1.5",
            "$count=yes",
            "$top=1&$top=2",
            "$select=",
            "$select=id,,title",
            "$select=a/b",
            "$filter=kind",
            "$filter=title eq 'x'",
            "$filter=kind ne 'actor'",
            "$filter=kind eq actor",
            "$filter=kind eq 'a'b'",
            "$orderby=title sideways",
            "$orderby=title asc, kind",
            "$search=",
            "$bogus=1",
        ] {
            assert!(Query::parse(Some(bad)).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn filter_variants() {
        assert_eq!(
            parse_filter("(kind eq 'tool')"),
            Ok(Filter::KindEq("tool".into()))
        );
        assert_eq!(
            parse_filter("kind  eq   'O''Brien'"),
            Ok(Filter::KindEq("O'Brien".into()))
        );
        assert_eq!(
            parse_filter("kind eq ''"),
            Ok(Filter::KindEq(String::new()))
        );
        assert!(parse_filter("kind eq '").is_err());
        assert!(parse_filter("kind eq 'a' or kind eq 'b'").is_err());
    }

    #[test]
    fn route_restrictions_and_names() {
        let q = Query::parse(Some("$top=1")).expect("valid");
        assert!(q.allow_only(&[Opt::Select]).is_err());
        assert!(q.allow_only(&[Opt::Top, Opt::Select]).is_ok());
        let q = Query::parse(Some("$select=id,nope")).expect("valid");
        assert!(q.check_names("x", Some(&["id"]), &[]).is_err());
        assert!(q.check_names("x", None, &[]).is_ok());
        let q = Query::parse(Some("$expand=artifact")).expect("valid");
        assert!(q.check_names("x", None, &["artifact"]).is_ok());
        assert!(q.check_names("x", None, &[]).is_err());
    }

    #[test]
    fn select_keeps_annotations_and_expanded_artifact() {
        let q = Query::parse(Some("$select=id")).expect("valid");
        assert!(q.keeps("id") && q.keeps("@odata.type"));
        assert!(!q.keeps("artifact") && !q.keeps("source"));
        assert_eq!(q.context_projection(), "(id)");
        let q = Query::parse(Some("$select=id&$expand=artifact")).expect("valid");
        assert!(q.keeps("artifact"));
        let q = Query::parse(None).expect("valid");
        assert!(q.keeps("anything"));
        assert_eq!(q.context_projection(), "");
    }

    #[test]
    fn paging_arithmetic() {
        assert_eq!(
            page(10, 4, 0),
            Page {
                start: 0,
                end: 4,
                next: Some((4, 4))
            }
        );
        assert_eq!(
            page(10, 4, 8),
            Page {
                start: 8,
                end: 10,
                next: None
            }
        );
        assert_eq!(
            page(10, 5, 5),
            Page {
                start: 5,
                end: 10,
                next: None
            }
        );
        assert_eq!(
            page(10, 4, 50),
            Page {
                start: 10,
                end: 10,
                next: None
            }
        );
        assert_eq!(
            page(0, 4, 0),
            Page {
                start: 0,
                end: 0,
                next: None
            }
        );
        assert_eq!(
            page(10, 0, 0),
            Page {
                start: 0,
                end: 0,
                next: None
            }
        );
        assert_eq!(
            page(10, u64::MAX, u64::MAX),
            Page {
                start: 10,
                end: 10,
                next: None
            }
        );
    }

    #[test]
    fn next_link_repeats_every_option() {
        let link = next_link(
            "http://127.0.0.1:9/",
            "/v1.0/security/threatIntelligence/intelProfiles",
            Some("$count=true&$filter=kind%20eq%20%27actor%27&$top=5&x=1"),
            5,
            10,
        );
        assert_eq!(
            link,
            "http://127.0.0.1:9/v1.0/security/threatIntelligence/intelProfiles?$count=true&$filter=kind%20eq%20%27actor%27&$top=5&x=1&$skip=10"
        );
        let link = next_link(
            "http://h",
            "/p/a%2Fb/indicators",
            Some("%24skip=3&%24top=2"),
            2,
            5,
        );
        assert_eq!(link, "http://h/p/a%2Fb/indicators?$skip=5&$top=2");
        assert_eq!(
            next_link("http://h", "/p", None, 100, 100),
            "http://h/p?$top=100&$skip=100"
        );
    }

    #[test]
    fn null_sorting() {
        assert_eq!(compare_optional(None, Some("a"), false), Ordering::Less);
        assert_eq!(compare_optional(None, Some("a"), true), Ordering::Greater);
    }
}
