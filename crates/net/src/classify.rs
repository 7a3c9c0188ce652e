//! Which answers and transport errors are worth another try, and what most likely caused them.
//! One classification for every client: the Graph source, its token endpoint and the pushing
//! sinks retry exactly the same things.

use reqwest::StatusCode;

use crate::client::describe;

/// What went wrong with one request, as far as the HTTP exchange tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// 401: missing, wrong or expired credentials.
    Unauthorized,
    /// 403: the credentials are good but lack a permission (a role, a licence).
    Forbidden,
    /// 404: a wrong URL, or a resource the credentials may not see.
    NotFound,
    /// 413: the request is larger than the server takes.
    TooLarge,
    /// 429: throttled.
    Throttled,
    /// 500, 502, 503, 504: the server, or a gateway before it, is in trouble for now.
    Unavailable,
    /// The request took longer than its timeout.
    Timeout,
    /// No connection, or one that broke (refused, reset, a name that does not resolve).
    Connection,
    /// The server's TLS certificate is not trusted.
    Untrusted,
    /// Any other refusal (400, 405, 406, 415, 422, 501, …): the request as sent will not succeed.
    Refused,
}

impl Cause {
    /// The cause of a status that is not a success; `None` for 1xx, 2xx and 3xx.
    pub fn of_status(status: StatusCode) -> Option<Cause> {
        if !(status.is_client_error() || status.is_server_error()) {
            return None;
        }
        Some(match status {
            StatusCode::UNAUTHORIZED => Cause::Unauthorized,
            StatusCode::FORBIDDEN => Cause::Forbidden,
            StatusCode::NOT_FOUND => Cause::NotFound,
            StatusCode::PAYLOAD_TOO_LARGE => Cause::TooLarge,
            StatusCode::TOO_MANY_REQUESTS => Cause::Throttled,
            StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Cause::Unavailable,
            _ => Cause::Refused,
        })
    }

    /// The cause of a transport error (no answer, or an answer that could not be read).
    pub fn of_error(error: &reqwest::Error) -> Cause {
        if error.is_connect() && describe(error).to_ascii_lowercase().contains("certificate") {
            Cause::Untrusted
        } else if error.is_timeout() {
            Cause::Timeout
        } else {
            Cause::Connection
        }
    }

    /// Whether another try can succeed: throttling and trouble that passes. A certificate the
    /// client does not trust will not become trusted on retry.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Cause::Throttled | Cause::Unavailable | Cause::Timeout | Cause::Connection
        )
    }

    /// The likely cause, for messages that have nothing more specific to say.
    pub fn likely(self) -> &'static str {
        match self {
            Cause::Unauthorized => "the credentials are missing, wrong or expired",
            Cause::Forbidden => "the credentials lack a permission",
            Cause::NotFound => "the URL is wrong, or the credentials may not see it",
            Cause::TooLarge => "the request is larger than the server takes",
            Cause::Throttled => "the server throttles this client",
            Cause::Unavailable => "the server is in trouble for now",
            Cause::Timeout => "the server did not answer in time",
            Cause::Connection => "the server cannot be reached",
            Cause::Untrusted => "the server's TLS certificate is not trusted",
            Cause::Refused => "the server does not accept the request as sent",
        }
    }
}

/// ` (<likely cause>)` of an error status, for messages that have nothing more specific to say;
/// empty for any other status.
pub fn likely_cause(status: StatusCode) -> String {
    Cause::of_status(status).map_or_else(String::new, |cause| format!(" ({})", cause.likely()))
}

/// Statuses that can succeed on retry: throttling and transient server trouble.
pub fn is_retryable(status: StatusCode) -> bool {
    Cause::of_status(status).is_some_and(Cause::is_transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap_or_default()));
        }
        for code in [200, 302, 400, 401, 403, 404, 406, 413, 415, 422, 501, 505] {
            assert!(
                !is_retryable(StatusCode::from_u16(code).unwrap_or_default()),
                "{code}"
            );
        }
    }

    #[test]
    fn statuses_have_their_causes() {
        let cause = |code| Cause::of_status(StatusCode::from_u16(code).unwrap_or_default());
        assert_eq!(cause(204), None);
        assert_eq!(cause(401), Some(Cause::Unauthorized));
        assert_eq!(cause(403), Some(Cause::Forbidden));
        assert_eq!(cause(404), Some(Cause::NotFound));
        assert_eq!(cause(413), Some(Cause::TooLarge));
        assert_eq!(cause(429), Some(Cause::Throttled));
        assert_eq!(cause(503), Some(Cause::Unavailable));
        assert_eq!(cause(400), Some(Cause::Refused));
        assert_eq!(cause(501), Some(Cause::Refused));
        assert_eq!(likely_cause(StatusCode::FOUND), "");
        assert!(likely_cause(StatusCode::GONE).starts_with(" (the server does not accept"));
    }
}
