//! Building Graph responses: the headers real Graph sends (§2.2), the error envelope (§8.3) and
//! the 429 body (§8.2).

use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::faults::{stalled_body, truncated_body};
use crate::json::ObjectWriter;
use crate::rng::guid;
use crate::timefmt::inner_error_date;

/// The `Content-Type` of Graph's successful JSON responses (§2.2).
pub const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// Graph's error responses carry plain `application/json` (§8.2 sample).
pub const ERROR_JSON: &str = "application/json";

/// `request-id` of this request and the `client-request-id` to echo.
#[derive(Clone, Debug)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

impl RequestIds {
    /// Echoes the client's `client-request-id`; without one, Graph reuses the request id.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let request_id = guid(&mut rand::rng());
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map_or_else(|| request_id.clone(), str::to_owned);
        RequestIds {
            request_id,
            client_request_id,
        }
    }
}

/// A response before it becomes an HTTP response, so a fault can still mangle its body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(HeaderName, String)>,
    /// A collection page (counted in `served_pages`).
    pub is_page: bool,
}

impl Reply {
    pub fn ok(body: String) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type: ODATA_JSON,
            body,
            headers: Vec::new(),
            is_page: false,
        }
    }

    pub fn page(body: String) -> Reply {
        Reply {
            is_page: true,
            ..Reply::ok(body)
        }
    }

    /// The Graph error envelope: `{"error":{"code","message","innerError":{…}}}`.
    pub fn error(status: StatusCode, code: &str, message: &str, ids: &RequestIds) -> Reply {
        let inner = ObjectWriter::new()
            .str("date", &inner_error_date(SystemTime::now()))
            .str("request-id", &ids.request_id)
            .str("client-request-id", &ids.client_request_id)
            .finish();
        let error = ObjectWriter::new()
            .str("code", code)
            .str("message", message)
            .raw("innerError", &inner)
            .finish();
        Reply {
            status,
            content_type: ERROR_JSON,
            body: ObjectWriter::new().raw("error", &error).finish(),
            headers: Vec::new(),
            is_page: false,
        }
    }

    /// The documented 429 body (§8.2), member order included.
    pub fn too_many_requests(ids: &RequestIds) -> Reply {
        let inner = ObjectWriter::new()
            .str("code", "429")
            .str("date", &inner_error_date(SystemTime::now()))
            .str("message", "Please retry after")
            .str("request-id", &ids.request_id)
            .str("status", "429")
            .finish();
        let error = ObjectWriter::new()
            .str("code", "TooManyRequests")
            .raw("innerError", &inner)
            .str("message", "Please retry again later.")
            .finish();
        Reply {
            status: StatusCode::TOO_MANY_REQUESTS,
            content_type: ERROR_JSON,
            body: ObjectWriter::new().raw("error", &error).finish(),
            headers: Vec::new(),
            is_page: false,
        }
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn head(&self, ids: &RequestIds) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        let ids_and_extras = [
            (
                HeaderName::from_static("request-id"),
                ids.request_id.as_str(),
            ),
            (
                HeaderName::from_static("client-request-id"),
                ids.client_request_id.as_str(),
            ),
            (HeaderName::from_static("odata-version"), "4.0"),
        ];
        let extras = self.headers.iter().map(|(n, v)| (n.clone(), v.as_str()));
        for (name, value) in ids_and_extras.into_iter().chain(extras) {
            // A client-request-id with bytes a header cannot carry is simply not echoed.
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        headers
    }

    pub fn into_response(self, ids: &RequestIds) -> Response {
        let headers = self.head(ids);
        (self.status, headers, self.body).into_response()
    }

    /// The same head (with the full `Content-Length`), but only half of the body arrives.
    pub fn into_truncated_response(self, ids: &RequestIds) -> Response {
        let mut headers = self.head(ids);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        let body = truncated_body(Bytes::from(self.body));
        (self.status, headers, body).into_response()
    }

    /// The same head (with the full `Content-Length`) and half of the body at once; the rest
    /// follows after `stall`.
    pub fn into_stalled_response(self, ids: &RequestIds, stall: Duration) -> Response {
        let mut headers = self.head(ids);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        let body = stalled_body(Bytes::from(self.body), stall);
        (self.status, headers, body).into_response()
    }

    /// A complete HTTP answer whose body is the first half of the JSON, and whose
    /// `Content-Length` says so: the client reads it all and finds it unparsable.
    pub fn into_cut_response(mut self, ids: &RequestIds) -> Response {
        let mut half = self.body.len() / 2;
        while !self.body.is_char_boundary(half) {
            half -= 1;
        }
        self.body.truncate(half);
        self.into_response(ids)
    }
}

/// An empty response; used when the connection is about to be reset anyway.
pub fn nothing() -> Response {
    Response::new(Body::empty())
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    fn ids() -> RequestIds {
        RequestIds {
            request_id: "r".into(),
            client_request_id: "c".into(),
        }
    }

    #[test]
    fn error_envelope_shape() {
        let reply = Reply::error(StatusCode::NOT_FOUND, "itemNotFound", "gone", &ids());
        let v: serde_json::Value = serde_json::from_str(&reply.body).expect("json");
        assert_eq!(v["error"]["code"], "itemNotFound");
        assert_eq!(v["error"]["innerError"]["request-id"], "r");
        assert_eq!(v["error"]["innerError"]["client-request-id"], "c");
        let date = v["error"]["innerError"]["date"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(date.len(), 19, "no zone designator: {date}");
    }

    #[test]
    fn throttle_body_is_the_documented_one() {
        let reply = Reply::too_many_requests(&ids());
        assert!(reply.body.starts_with(
            r#"{"error":{"code":"TooManyRequests","innerError":{"code":"429","date":""#
        ));
        assert!(
            reply
                .body
                .ends_with(r#""message":"Please retry again later."}}"#)
        );
    }

    #[test]
    fn echoes_client_request_id() {
        let mut headers = HeaderMap::new();
        headers.insert("client-request-id", HeaderValue::from_static("abc"));
        assert_eq!(RequestIds::from_headers(&headers).client_request_id, "abc");
        let fresh = RequestIds::from_headers(&HeaderMap::new());
        assert_eq!(fresh.request_id, fresh.client_request_id);
        assert_ne!(
            fresh.request_id,
            RequestIds::from_headers(&HeaderMap::new()).request_id
        );
    }
}
