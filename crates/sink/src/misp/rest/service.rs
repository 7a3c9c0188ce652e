//! The HTTP side of the MISP sink: the key in `Authorization`, `Accept: application/json` (MISP
//! answers HTML without it), retries with backoff on 429/5xx/connection errors, and every refusal
//! turned into an outcome or an error that names its likely cause (reference `misp.md` §3).

use ctiport_net::{Answer, Authorization, Dialect, HttpClient, likely_cause, plain_text_detail};
use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use super::config::{KEY_VAR, MispTarget};
use super::stored::{EventResponse, Me, StoredEvent};
use crate::push::PushError;

/// How MISP's REST API speaks HTTP (it answers HTML without `Accept: application/json`).
const MISP: Dialect = Dialect {
    name: "MISP",
    media_type: "application/json",
    detail: api_message,
};

/// What `POST /events/add` came to.
#[derive(Debug)]
pub enum Added {
    Stored(Box<StoredEvent>),
    /// 404 with `Location`: the uuid exists (reference §3.4); the event must be edited.
    Exists {
        location: String,
    },
    /// The instance refused this event (validation, blocklist): the reason.
    Refused(String),
}

/// What `POST /events/edit/{uuid}` came to.
#[derive(Debug)]
pub enum Edited {
    Stored(Box<StoredEvent>),
    /// 403 "Event in the request not newer than the local copy.": re-read and bump.
    NotNewer,
    /// The instance refused this edit (validation, another organisation's event): the reason.
    Refused(String),
}

pub struct MispService {
    http: HttpClient,
    base: Url,
}

impl MispService {
    pub fn new(target: &MispTarget) -> Result<Self, PushError> {
        // The key is the whole `Authorization` header (reference `misp.md` §3.1).
        let key = Authorization::Key(target.key.clone());
        let http = target
            .endpoint
            .client(MISP, Some(&key))
            .map_err(|e| PushError::Config(format!("{KEY_VAR}: {e}")))?;
        Ok(MispService {
            http,
            base: target.endpoint.url.clone(),
        })
    }

    fn url(&self, path: &str) -> Result<Url, PushError> {
        self.base
            .join(path)
            .map_err(|e| PushError::Config(format!("bad MISP URL for {path}: {e}")))
    }

    /// `GET /users/view/me`: the key works, and what its user may do.
    pub async fn me(&self) -> Result<Me, PushError> {
        let url = self.url("users/view/me")?;
        let answer = self
            .http
            .send(Method::GET, &url, None, "reading the key's user")
            .await?;
        if answer.status != StatusCode::OK {
            return Err(self.denied_or(&answer, &url, "reading the key's user"));
        }
        let value: Value = json(&answer, &url)?;
        Me::from_json(&value).ok_or_else(|| {
            PushError::Refused(format!(
                "{url} answered without the user's Role: is {} a MISP instance?",
                self.base
            ))
        })
    }

    /// `HEAD /events/view/{uuid}`: whether the instance has the event.
    pub async fn exists(&self, uuid: &str) -> Result<bool, PushError> {
        let url = self.url(&format!("events/view/{uuid}"))?;
        let answer = self
            .http
            .send(Method::HEAD, &url, None, "looking up an event")
            .await?;
        match answer.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.denied_or(&answer, &url, "looking up an event")),
        }
    }

    /// The stored event with its soft-deleted attributes (`{"deleted": [0, 1]}`, as PyMISP's
    /// `get_event(deleted=True)` asks), or `None` when the instance has no such event.
    pub async fn view(&self, uuid: &str) -> Result<Option<StoredEvent>, PushError> {
        let url = self.url(&format!("events/view/{uuid}"))?;
        let body = br#"{"deleted": [0, 1]}"#;
        let answer = self
            .http
            .send(Method::POST, &url, Some(body), "reading an event")
            .await?;
        match answer.status {
            StatusCode::OK => Ok(Some(json::<EventResponse>(&answer, &url)?.event)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.denied_or(&answer, &url, "reading an event")),
        }
    }

    /// `POST /events/add`.
    pub async fn add(&self, body: &[u8]) -> Result<Added, PushError> {
        let url = self.url("events/add")?;
        let answer = self
            .http
            .send(Method::POST, &url, Some(body), "adding an event")
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::CREATED => Ok(Added::Stored(Box::new(
                json::<EventResponse>(&answer, &url)?.event,
            ))),
            StatusCode::NOT_FOUND => match answer.headers.get(LOCATION) {
                Some(location) => Ok(Added::Exists {
                    location: location.to_str().unwrap_or_default().to_owned(),
                }),
                None => Err(PushError::Refused(format!(
                    "not found (HTTP 404) for {url}{}: check the MISP base URL",
                    api_message(&answer.body)
                ))),
            },
            StatusCode::FORBIDDEN => match save_failure(&answer.body) {
                Some(reason) => Ok(Added::Refused(reason)),
                None => Ok(Added::Refused(self.forbidden(
                    &answer,
                    &url,
                    Context::Add,
                )?)),
            },
            _ => Err(self.denied_or(&answer, &url, "adding an event")),
        }
    }

    /// `POST /events/edit/{uuid}`.
    pub async fn edit(&self, uuid: &str, body: &[u8]) -> Result<Edited, PushError> {
        let url = self.url(&format!("events/edit/{uuid}"))?;
        let answer = self
            .http
            .send(Method::POST, &url, Some(body), "editing an event")
            .await?;
        match answer.status {
            StatusCode::OK => Ok(Edited::Stored(Box::new(
                json::<EventResponse>(&answer, &url)?.event,
            ))),
            StatusCode::FORBIDDEN => match save_failure(&answer.body) {
                Some(reason) if reason.contains("not newer than the local copy") => {
                    Ok(Edited::NotNewer)
                }
                Some(reason) => Ok(Edited::Refused(reason)),
                None => Ok(Edited::Refused(self.forbidden(
                    &answer,
                    &url,
                    Context::Edit,
                )?)),
            },
            StatusCode::NOT_FOUND => Ok(Edited::Refused(format!(
                "the instance no longer has the event (HTTP 404{})",
                api_message(&answer.body)
            ))),
            _ => Err(self.denied_or(&answer, &url, "editing an event")),
        }
    }

    /// A 403 that is not a save failure: a bad key or a role without the permission stops the
    /// push; a refusal of this one event (blocklist, another organisation's event) does not.
    fn forbidden(&self, answer: &Answer, url: &Url, context: Context) -> Result<String, PushError> {
        let message = api_message(&answer.body);
        let lower = message.to_ascii_lowercase();
        if lower.contains("authentication failed") || lower.contains("do not have permission") {
            return Err(self.denied_or(answer, url, context.what()));
        }
        let hint = match context {
            _ if lower.contains("blocklist") => {
                " (the instance blocks this uuid or organisation: an administrator must remove \
                 the blocklist entry)"
            }
            Context::Edit => {
                " (only users of the organisation that created the event may edit it: was it \
                 created with another key?)"
            }
            Context::Add => "",
        };
        Ok(format!("HTTP 403{message}{hint}"))
    }

    /// The error for an answer the push cannot go on from, naming the likely cause.
    fn denied_or(&self, answer: &Answer, url: &Url, what: &str) -> PushError {
        let code = answer.status.as_u16();
        let message = api_message(&answer.body);
        let lower = message.to_ascii_lowercase();
        match answer.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                if lower.contains("authentication failed")
                    || answer.status == StatusCode::UNAUTHORIZED =>
            {
                PushError::Refused(format!(
                    "the instance refused the API key in {KEY_VAR} (HTTP {code}{message}): use \
                     the key of an API-enabled user of {}, and check that it has not expired \
                     or been restricted to other addresses",
                    self.base
                ))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PushError::Refused(format!(
                "permission denied (HTTP {code}{message}) for {what} at {url}: the role of the \
                 key's user needs perm_add (create events), perm_modify_org (edit them) and \
                 perm_tagger (attach tags)"
            )),
            StatusCode::NOT_FOUND => PushError::Refused(format!(
                "not found (HTTP 404{message}) for {what} at {url}: check the MISP base URL"
            )),
            StatusCode::METHOD_NOT_ALLOWED => PushError::Refused(format!(
                "method not allowed (HTTP 405{message}) for {what} at {url}: is {} a MISP \
                 instance?",
                self.base
            )),
            status => PushError::Refused(format!(
                "unexpected HTTP {code}{message} for {what} at {url}{}",
                likely_cause(status)
            )),
        }
    }
}

#[derive(Clone, Copy)]
enum Context {
    Add,
    Edit,
}

impl Context {
    fn what(self) -> &'static str {
        match self {
            Context::Add => "adding an event",
            Context::Edit => "editing an event",
        }
    }
}

fn json<T: serde::de::DeserializeOwned>(answer: &Answer, url: &Url) -> Result<T, PushError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        let text = String::from_utf8_lossy(&answer.body);
        if text.trim_start().starts_with('<') {
            PushError::Refused(format!(
                "{url} answered with HTML, not JSON: is the URL the instance's base URL (the \
                 one its web interface has, without /events)?"
            ))
        } else {
            PushError::Refused(format!("unreadable answer from {url}: {e}"))
        }
    })
}

/// `: <name>` of MISP's error shapes (`{"name", "message", "url"}` or a save failure), or a
/// short plain-text body; empty when there is none.
pub fn api_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let text = ["message", "name"]
                .iter()
                .find_map(|key| value.get(key).and_then(Value::as_str))
                .unwrap_or_default();
            if text.is_empty() {
                String::new()
            } else {
                format!(": {}", text.chars().take(300).collect::<String>())
            }
        }
        Err(_) => plain_text_detail(body),
    }
}

/// The reason of a save failure (`{"saved": false, …, "errors": …}`, reference §3.2), with its
/// field errors flattened: `Could not add Event: Event.info: Info cannot be empty.`
pub fn save_failure(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    if value.get("saved").and_then(Value::as_bool) != Some(false) {
        return None;
    }
    let name = value
        .get("message")
        .or_else(|| value.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("refused");
    let mut details = Vec::new();
    flatten_errors(
        value.get("errors").unwrap_or(&Value::Null),
        "",
        &mut details,
    );
    Some(if details.is_empty() {
        name.to_owned()
    } else {
        format!("{name}: {}", details.join("; "))
    })
}

fn flatten_errors(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::String(text) if path.is_empty() => out.push(text.clone()),
        Value::String(text) => out.push(format!("{path}: {text}")),
        Value::Array(items) => {
            for item in items {
                flatten_errors(item, path, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten_errors(item, &path, out);
            }
        }
        Value::Null => {}
        other => out.push(format!("{path}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_failures_are_flattened() {
        let add = br#"{"saved":false,"name":"Could not add Event","message":"Could not add Event","url":"/events/add","errors":{"Event":{"info":["Info cannot be empty."]}}}"#;
        assert_eq!(
            save_failure(add).as_deref(),
            Some("Could not add Event: Event.info: Info cannot be empty.")
        );
        let edit = br#"{"saved":false,"name":"Could not edit Event","message":"Could not edit Event","url":"/events/edit/1","errors":"Event could not be saved: Event in the request not newer than the local copy.","id":"1"}"#;
        assert!(save_failure(edit).is_some_and(|r| r.ends_with("not newer than the local copy.")));
        assert_eq!(
            save_failure(br#"{"name":"x","message":"x","url":"/"}"#),
            None
        );
        assert_eq!(save_failure(b"<html>"), None);
    }

    #[test]
    fn api_messages_are_short() {
        assert_eq!(
            api_message(
                br#"{"name":"Invalid event","message":"Invalid event","url":"/events/view/x"}"#
            ),
            ": Invalid event"
        );
        assert_eq!(api_message(b""), "");
        assert_eq!(api_message(b"<html><body>login</body></html>"), "");
    }
}
