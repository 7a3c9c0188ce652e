//! Which URLs a client accepts: absolute `http(s)` URLs with a host and without credentials
//! (a password written into a URL would end up in logs), and plain `http://` only where the
//! traffic never leaves the machine, unless the user allows it.

use std::net::IpAddr;

use url::{Host, Url};

use crate::secret::redact_userinfo;

/// How messages name a kind of URL and say what to do instead of writing credentials into it.
#[derive(Clone, Copy, Debug)]
pub struct UrlKind {
    /// `a TAXII collection URL`.
    pub name: &'static str,
    /// `https://host/<api-root>/collections/<collection-id>/`.
    pub example: &'static str,
    /// `set TAXII_USERNAME and TAXII_PASSWORD instead`.
    pub credentials: &'static str,
}

impl UrlKind {
    /// The error for `text` (shown with its credentials redacted), which is not such a URL.
    pub fn not_one(&self, text: &str, why: &str) -> String {
        format!(
            "'{}' is not {} ({why}); expected {}",
            redact_userinfo(text),
            self.name,
            self.example
        )
    }
}

/// `text` as an absolute `http(s)` URL with a host, without credentials, query or fragment, and
/// with a path that ends in `/` (so that relative paths join under it).
pub fn parse_http_url(text: &str, kind: &UrlKind) -> Result<Url, String> {
    let mut url = Url::parse(text).map_err(|e| kind.not_one(text, &e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() || redact_userinfo(text) != text {
        return Err(format!(
            "credentials in {} are not accepted (they would end up in logs); {}",
            kind.name, kind.credentials
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(kind.not_one(text, "the scheme must be https or http"));
    }
    if url.host().is_none() {
        return Err(kind.not_one(text, "no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(kind.not_one(text, "no query or fragment allowed"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The plain-`http://` rule of one client: what would travel unencrypted, and the option that
/// allows it anyway.
#[derive(Clone, Copy, Debug)]
pub struct PlainHttp {
    /// `credentials and intelligence`.
    pub exposes: &'static str,
    /// `--taxii-allow-http`.
    pub allow_option: &'static str,
}

impl PlainHttp {
    /// Refuses `http://` to a host other than loopback, unless `allowed`.
    pub fn check(&self, url: &Url, allowed: bool) -> Result<(), String> {
        if url.scheme() != "http" || allowed || is_loopback(url) {
            return Ok(());
        }
        Err(format!(
            "refusing plain http:// to {}: {} would travel unencrypted; use https://, or pass {} \
             if you really mean it",
            url.host_str().unwrap_or_default(),
            self.exposes,
            self.allow_option
        ))
    }
}

/// Plain HTTP is harmless only when the traffic never leaves the machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Scheme, host and port of an absolute URL (`https://graph.microsoft.com`): a token is only
/// ever sent to the origin it is for.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    Some(parsed.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: UrlKind = UrlKind {
        name: "a base URL",
        example: "https://example.org/",
        credentials: "set THE_KEY instead",
    };

    #[test]
    fn loopback_hosts() {
        for (text, expected) in [
            ("http://127.0.0.1:5000/", true),
            ("http://127.8.9.1/", true),
            ("http://[::1]:5000/", true),
            ("http://LOCALHOST/", true),
            ("http://misp.example/", false),
            ("http://10.0.0.1/", false),
        ] {
            let url = Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(is_loopback(&url), expected, "{text}");
        }
    }

    #[test]
    fn urls_get_a_trailing_slash_and_keep_their_path() {
        let url = |t: &str| parse_http_url(t, &KIND).map(|u| u.to_string());
        assert_eq!(url("https://h.example").unwrap(), "https://h.example/");
        assert_eq!(
            url("https://h.example/a/b").unwrap(),
            "https://h.example/a/b/"
        );
        for bad in [
            "ftp://h.example/",
            "https://h.example/?a=b",
            "https://h.example/#f",
            "h.example",
            "not a url",
        ] {
            let error = url(bad).unwrap_err();
            assert!(error.contains("is not a base URL"), "{bad}: {error}");
        }
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_being_shown() {
        for text in [
            "https://u:hunter2@h.example/",
            "ftp://u:hunter2@h.example/",
            "https://u:hun ter2@h.example/",
        ] {
            let error = parse_http_url(text, &KIND).unwrap_err();
            assert!(error.contains("THE_KEY"), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains("hun ter2"),
                "{error}"
            );
        }
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let rule = PlainHttp {
            exposes: "the key",
            allow_option: "--allow-http",
        };
        let url = |t: &str| Url::parse(t).unwrap();
        assert!(rule.check(&url("http://127.0.0.1:8080/"), false).is_ok());
        assert!(rule.check(&url("https://h.example/"), false).is_ok());
        let refused = rule.check(&url("http://h.example/"), false).unwrap_err();
        assert!(
            refused.contains("--allow-http") && refused.contains("the key"),
            "{refused}"
        );
        assert!(rule.check(&url("http://h.example/"), true).is_ok());
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://graph.microsoft.com/v1.0/x?y").as_deref(),
            Some("https://graph.microsoft.com")
        );
        assert_eq!(origin_of("graph.microsoft.com"), None);
    }
}
