//! Graph request paths → the resource they name.
//!
//! Paths are taken raw (still percent-encoded) and split on `/` *before* decoding, so ids that
//! contain `/` (`%2F`) stay one segment. Both key spellings work, as on the live service (§3
//! notes): `intelProfiles/{id}` and `intelProfiles('{id}')`.
//!
//! Literal `.` and `..` segments are resolved first, as any URL-normalising front end does
//! (RFC 3986 §5.2.4): `intelProfiles/../indicators` names `indicators`, not the indicators of a
//! profile `..`. Percent-encoded dots (`%2E%2E`) are data, so an encoded id reaches its profile.

use ctiport_model::pct::unpct;

/// What a Graph path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    ProfileList,
    ProfileCount,
    Profile(String),
    ProfileIndicators(String),
    ProfileIndicatorCount(String),
    Indicator(String),
    Host(String),
    HostReputation(String),
    /// `hosts`, `intelligenceProfileIndicators`: "List retrieval is not yet supported" (§3).
    ListNotSupported(&'static str),
    /// A segment the simulator does not serve.
    Unknown(String),
}

impl Resource {
    /// The route template, for `by_route` in the stats.
    pub fn route_key(&self) -> &'static str {
        match self {
            Resource::ProfileList | Resource::ProfileCount => "intelProfiles",
            Resource::Profile(_) => "intelProfiles/{id}",
            Resource::ProfileIndicators(_) | Resource::ProfileIndicatorCount(_) => {
                "intelProfiles/{id}/indicators"
            }
            Resource::Indicator(_) => "intelligenceProfileIndicators/{id}",
            Resource::Host(_) => "hosts/{id}",
            Resource::HostReputation(_) => "hosts/{id}/reputation",
            Resource::ListNotSupported(_) | Resource::Unknown(_) => "other",
        }
    }
}

/// `path` with its literal `.` and `..` segments resolved (RFC 3986 §5.2.4); `..` never climbs
/// above the root.
pub fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    out.join("/")
}

/// Parses the part of the path after `/security/threatIntelligence/`.
pub fn parse(rest: &str) -> Resource {
    let raw: Vec<&str> = rest.strip_suffix('/').unwrap_or(rest).split('/').collect();
    let mut decoded = Vec::with_capacity(raw.len());
    for segment in &raw {
        match unpct(segment) {
            Some(s) => decoded.push(s),
            None => return Resource::Unknown((*segment).to_owned()),
        }
    }
    let Some((first, rest)) = decoded.split_first() else {
        return Resource::Unknown(String::new());
    };
    let (name, key, rest) = match split_key(first) {
        Some((name, key)) => (name, Some(key), rest),
        None => match rest.split_first() {
            Some((key, tail)) => (first.as_str(), Some(key.clone()), tail),
            None => (first.as_str(), None, rest),
        },
    };
    let tail: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (name, key, tail.as_slice()) {
        ("intelProfiles", None, []) => Resource::ProfileList,
        ("intelProfiles", Some(k), []) if k == "$count" => Resource::ProfileCount,
        ("intelProfiles", Some(k), []) => Resource::Profile(k),
        ("intelProfiles", Some(k), ["indicators"]) => Resource::ProfileIndicators(k),
        ("intelProfiles", Some(k), ["indicators", "$count"]) => Resource::ProfileIndicatorCount(k),
        ("intelligenceProfileIndicators" | "intelProfileIndicators", Some(k), []) => {
            Resource::Indicator(k)
        }
        ("intelligenceProfileIndicators" | "intelProfileIndicators", None, []) => {
            Resource::ListNotSupported("intelligenceProfileIndicators")
        }
        ("hosts", Some(k), []) => Resource::Host(k),
        ("hosts", Some(k), ["reputation"]) => Resource::HostReputation(k),
        ("hosts", None, []) => Resource::ListNotSupported("hosts"),
        _ if !matches!(
            name,
            "intelProfiles" | "intelligenceProfileIndicators" | "intelProfileIndicators" | "hosts"
        ) =>
        {
            Resource::Unknown(name.to_owned())
        }
        (_, _, [first, ..]) => Resource::Unknown((*first).to_owned()),
        _ => Resource::Unknown(name.to_owned()),
    }
}

/// `name('key')` → (`name`, `key`), with OData's doubled quotes undone.
fn split_key(segment: &str) -> Option<(&str, String)> {
    let open = segment.find('(')?;
    let inner = segment[open + 1..].strip_suffix(')')?;
    let quoted = inner.strip_prefix('\'')?.strip_suffix('\'')?;
    let name = &segment[..open];
    if name.is_empty() {
        return None;
    }
    Some((name, quoted.replace("''", "'")))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn both_key_spellings() {
        assert_eq!(parse("intelProfiles"), Resource::ProfileList);
        assert_eq!(parse("intelProfiles/"), Resource::ProfileList);
        assert_eq!(parse("intelProfiles/abc"), Resource::Profile("abc".into()));
        assert_eq!(
            parse("intelProfiles('abc')"),
            Resource::Profile("abc".into())
        );
        assert_eq!(
            parse("intelProfiles/ab%2Fc%2Bd%3D/indicators"),
            Resource::ProfileIndicators("ab/c+d=".into())
        );
        assert_eq!(
            parse("intelProfiles('ab%2Fc')/indicators"),
            Resource::ProfileIndicators("ab/c".into())
        );
        assert_eq!(
            parse("intelProfiles%28%27O%27%27Brien%27%29"),
            Resource::Profile("O'Brien".into())
        );
        assert_eq!(parse("intelProfiles/$count"), Resource::ProfileCount);
        assert_eq!(
            parse("intelProfiles/x/indicators/$count"),
            Resource::ProfileIndicatorCount("x".into())
        );
    }

    #[test]
    fn dot_segments_are_resolved_but_encoded_dots_are_ids() {
        let ti = "/v1.0/security/threatIntelligence/";
        let resolve = |rest: &str| remove_dot_segments(&format!("{ti}{rest}"));
        assert_eq!(
            resolve("intelProfiles/./indicators"),
            format!("{ti}intelProfiles/indicators")
        );
        assert_eq!(
            resolve("intelProfiles/../indicators"),
            format!("{ti}indicators")
        );
        assert_eq!(
            resolve("intelProfiles/x/../p1/indicators"),
            format!("{ti}intelProfiles/p1/indicators")
        );
        assert_eq!(resolve("intelProfiles/.."), format!("{ti}"));
        assert_eq!(remove_dot_segments("/a/../../../b"), "/b");
        assert_eq!(remove_dot_segments("/a/b/c"), "/a/b/c");
        let encoded = format!("{ti}intelProfiles/%2E%2E/indicators");
        assert_eq!(remove_dot_segments(&encoded), encoded);
        assert_eq!(
            parse("intelProfiles/%2E%2E/indicators"),
            Resource::ProfileIndicators("..".into())
        );
        assert_eq!(parse("intelProfiles/%2E"), Resource::Profile(".".into()));
        assert_eq!(
            parse("intelProfiles('..')/indicators"),
            Resource::ProfileIndicators("..".into())
        );
    }

    #[test]
    fn other_resources() {
        assert_eq!(
            parse("intelligenceProfileIndicators/a%3D"),
            Resource::Indicator("a=".into())
        );
        assert_eq!(
            parse("intelProfileIndicators('g')"),
            Resource::Indicator("g".into())
        );
        assert_eq!(
            parse("hosts/2001%3Adb8%3A%3A1/reputation"),
            Resource::HostReputation("2001:db8::1".into())
        );
        assert_eq!(
            parse("hosts('h.example')"),
            Resource::Host("h.example".into())
        );
        assert_eq!(parse("hosts"), Resource::ListNotSupported("hosts"));
        assert_eq!(parse("articles"), Resource::Unknown("articles".into()));
        assert_eq!(parse("hosts/h/whois"), Resource::Unknown("whois".into()));
        assert_eq!(parse("intelProfiles/a/b/c"), Resource::Unknown("b".into()));
        assert_eq!(parse("intelProfiles/%ZZ"), Resource::Unknown("%ZZ".into()));
    }
}
