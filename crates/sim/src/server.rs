//! Starting and stopping the HTTP server.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// The configuration lives in `app`; it is re-exported here, where callers start the server.
use crate::app::App;
pub use crate::app::{Mode, ServeConfig};
use crate::conn::{ConnInfo, KillableListener};
use crate::data::Store;

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>` (the bound address, whatever `--public-url` says).
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("server task")??;
        Ok(())
    }
}

/// Binds 127.0.0.1 (never another interface) and serves `store` until [`Running::stop`].
pub async fn start(config: ServeConfig, store: Store) -> anyhow::Result<Running> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let base_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| url.clone())
        .trim_end_matches('/')
        .to_owned();
    let app = App::new(config, store, base_url, Instant::now());
    let router = crate::routes::router(Arc::new(app));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            KillableListener(listener),
            router.into_make_service_with_connect_info::<ConnInfo>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    Ok(Running {
        addr,
        url,
        shutdown: Some(tx),
        task,
    })
}
