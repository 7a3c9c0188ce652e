//! The HTTP side of the TAXII sink: exact TAXII 2.1 headers, Basic auth, retries with backoff on
//! 429/5xx/connection errors (honouring `Retry-After`), and every refusal turned into an error that
//! names its likely cause.

use ctiport_net::{Answer, Dialect, HttpClient, likely_cause, plain_text_detail};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::config::{PASSWORD_VAR, TaxiiTarget, USERNAME_VAR};
use super::envelope::Envelope;
use super::resources::{ApiRoot, Collection, ObjectsPage, Status, TAXII_MEDIA_TYPE, error_detail};
use crate::push::PushError;

/// Ids asked for in one `match[id]` query (keeps the URL short).
const IDS_PER_QUERY: usize = 40;
/// Pages followed for one query, against a server whose `next` never ends.
const MAX_PAGES: usize = 1_000;

/// What a POST of an envelope came to.
#[derive(Debug)]
pub enum Posted {
    Accepted(Status),
    /// HTTP 413: the envelope is larger than the server takes.
    TooLarge,
}

/// How TAXII 2.1 speaks HTTP.
const TAXII: Dialect = Dialect {
    name: "TAXII",
    media_type: TAXII_MEDIA_TYPE,
    detail: error_detail,
};

pub struct TaxiiService {
    http: HttpClient,
    api_root: Url,
    collection: Url,
    objects: Url,
}

impl TaxiiService {
    pub fn new(target: &TaxiiTarget) -> Result<Self, PushError> {
        let http = target
            .endpoint
            .client(TAXII, target.auth.as_ref())
            .map_err(PushError::Config)?;
        let objects = target
            .collection
            .url
            .join("objects/")
            .map_err(|e| PushError::Config(format!("bad collection URL: {e}")))?;
        Ok(TaxiiService {
            http,
            api_root: target.collection.api_root.clone(),
            collection: target.collection.url.clone(),
            objects,
        })
    }

    /// `GET {api-root}/`.
    pub async fn api_root(&self) -> Result<ApiRoot, PushError> {
        let url = self.api_root.clone();
        self.get_json(&url, "the API root").await
    }

    /// `GET {api-root}/collections/{id}/`.
    pub async fn collection(&self) -> Result<Collection, PushError> {
        let url = self.collection.clone();
        self.get_json(&url, "the collection").await
    }

    /// `POST {collection}/objects/` with the envelope as a sized body.
    pub async fn post(&self, envelope: &Envelope) -> Result<Posted, PushError> {
        let url = self.objects.clone();
        let body = envelope.body();
        let answer = self
            .http
            .send(Method::POST, &url, Some(&body), "adding objects")
            .await?;
        match answer.status {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::CREATED => {
                parse(&answer.body, "the status of an add-objects request").map(Posted::Accepted)
            }
            StatusCode::PAYLOAD_TOO_LARGE => Ok(Posted::TooLarge),
            _ => Err(self.refusal(&answer, &url, "adding objects")),
        }
    }

    /// `GET {api-root}/status/{id}/`.
    pub async fn status(&self, id: &str) -> Result<Status, PushError> {
        let mut url = self.api_root.clone();
        url.path_segments_mut()
            .map_err(|()| PushError::Config("the API root URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(["status", id, ""]);
        self.get_json(&url, "the status resource").await
    }

    /// Every stored version of the objects with these ids (`match[id]`, `match[version]=all`),
    /// following `next` through the pages.
    pub async fn objects_with_ids(
        &self,
        ids: &[&str],
    ) -> Result<Vec<serde_json::Value>, PushError> {
        let mut found = Vec::new();
        for batch in ids.chunks(IDS_PER_QUERY) {
            let wanted = batch.join(",");
            let mut next: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let mut url = self.objects.clone();
                {
                    let mut query = url.query_pairs_mut();
                    query.append_pair("match[id]", &wanted);
                    query.append_pair("match[version]", "all");
                    if let Some(token) = &next {
                        query.append_pair("next", token);
                    }
                }
                let page: ObjectsPage = self.get_json(&url, "objects already stored").await?;
                found.extend(page.objects);
                match page.next {
                    Some(token) if page.more => next = Some(token),
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &Url, what: &str) -> Result<T, PushError> {
        let answer = self.http.send(Method::GET, url, None, what).await?;
        if answer.status != StatusCode::OK {
            return Err(self.refusal(&answer, url, what));
        }
        parse(&answer.body, what)
    }

    /// The error for an answer the sink cannot go on from, naming the likely cause.
    fn refusal(&self, answer: &Answer, url: &Url, what: &str) -> PushError {
        let code = answer.status.as_u16();
        let detail = error_detail(&answer.body);
        let detail = if detail.is_empty() {
            plain_text_detail(&answer.body)
        } else {
            detail
        };
        PushError::Refused(match answer.status {
            StatusCode::UNAUTHORIZED if !self.http.is_authorized() => format!(
                "authentication required (HTTP 401) for {what} at {url}: set {USERNAME_VAR} and \
                 {PASSWORD_VAR} in the environment"
            ),
            StatusCode::UNAUTHORIZED => format!(
                "authentication failed (HTTP 401) for {what} at {url}: the server rejected the \
                 user name or password in {USERNAME_VAR} / {PASSWORD_VAR}"
            ),
            StatusCode::FORBIDDEN => format!(
                "permission denied (HTTP 403) for {what} at {url}{detail}: the collection is not \
                 writable for this user (can_write is false, or the account lacks permission)"
            ),
            StatusCode::NOT_FOUND => format!(
                "not found (HTTP 404) for {what} at {url}: check the API root and the collection \
                 id in the URL (some servers also answer 404 for a collection the user may not see)"
            ),
            StatusCode::NOT_ACCEPTABLE => format!(
                "the server refused 'Accept: {TAXII_MEDIA_TYPE}' (HTTP 406) for {what} at {url}: \
                 it does not serve TAXII 2.1 there (a TAXII 2.0 server, or not a TAXII endpoint)"
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => format!(
                "the server refused 'Content-Type: {TAXII_MEDIA_TYPE}' (HTTP 415) for {what} at \
                 {url}: it does not take TAXII 2.1 envelopes there{detail}"
            ),
            StatusCode::UNPROCESSABLE_ENTITY => format!(
                "the server could not process the request (HTTP 422) for {what} at {url}{detail}"
            ),
            status => format!(
                "unexpected HTTP {code} for {what} at {url}{detail}{}",
                likely_cause(status)
            ),
        })
    }
}

fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, PushError> {
    serde_json::from_slice(body)
        .map_err(|e| PushError::Refused(format!("unreadable response for {what}: {e}")))
}
