//! A scripted Graph on a loopback port, for tests that must see the requests exactly as they
//! leave the HTTP client (after its URL normalisation).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::config::{Credentials, GraphConfig};
use ctiport_net::Secret;

/// The answer to one request: status and JSON body.
pub type Answer = (u16, String);

pub struct Loopback {
    pub config: GraphConfig,
    /// `GET <path>` of every request after the token, in arrival order, path as received.
    pub requests: Arc<Mutex<Vec<String>>>,
}

/// Serves the token endpoint, and `answer(path, origin)` for every GET; the config points at it,
/// with one attempt per request and no pacing worth mentioning.
pub async fn serve(answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> Loopback {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (answer, seen, here) = (Arc::new(answer), requests.clone(), origin.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (answer, seen, here) = (answer.clone(), seen.clone(), here.clone());
            tokio::spawn(async move {
                let Some(head) = read_head(&mut stream).await else {
                    return;
                };
                let line = head.lines().next().unwrap_or_default().to_owned();
                let mut words = line.split(' ');
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let (status, body) = if method == "POST" {
                    (200, r#"{"access_token":"t","expires_in":3600}"#.to_owned())
                } else {
                    seen.lock().unwrap().push(format!("{method} {path}"));
                    answer(path, &here)
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    let mut config = GraphConfig::new(Credentials {
        tenant_id: "tenant".into(),
        client_id: "client".into(),
        client_secret: Secret::new("secret"),
    });
    config.graph_url = format!("{origin}/v1.0");
    config.authority_url = origin;
    config.rate = 10_000.0;
    config.max_attempts = 1;
    Loopback { config, requests }
}

/// The request line and headers; a body (the token form) is read up to its length.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        bytes.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return Some(text[..end].to_owned());
            }
        }
    }
}

/// A Graph collection page.
pub fn page(records: &[serde_json::Value]) -> Answer {
    (200, serde_json::json!({ "value": records }).to_string())
}

/// Graph's 404 envelope.
pub fn not_found() -> Answer {
    (
        404,
        r#"{"error":{"code":"itemNotFound","message":"not found"}}"#.to_owned(),
    )
}
