//! Secrets that never print themselves, and URLs with their credentials blanked out.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A string that never shows itself: not in `Debug`, not in `Display`, not in logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to the value: call sites that put it on the wire, and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret read from a string (a config file's value, once its `${NAME}` reference is resolved).
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// `text` with any `user:password@` in a URL's authority replaced by `***@`, for messages: a
/// credential written into a URL must not reach a log line.
pub fn redact_userinfo(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    match text[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret = Secret::new("hunter2-very-secret");
        assert!(!format!("{secret:?} {secret} {:?}", Some(&secret)).contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn redacts_credentials_in_urls_only() {
        assert_eq!(
            redact_userinfo("taxii:https://u:pw@ti.example/api/"),
            "taxii:https://***@ti.example/api/"
        );
        assert_eq!(
            redact_userinfo("https://misp.example/?a=b@c"),
            "https://misp.example/?a=b@c"
        );
        assert_eq!(redact_userinfo("stix:out/a@b.json"), "stix:out/a@b.json");
        assert_eq!(redact_userinfo("https://a:b@h/x@y"), "https://***@h/x@y");
    }
}
