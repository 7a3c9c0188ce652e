//! Every source behind one interface: records go into a bounded channel, in order.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ctiport_model::record::SourceRecord;
use tokio::sync::mpsc;

use crate::collection::Flow;
use crate::dump::DumpSource;
use crate::dump_writer::DumpWriter;
use crate::graph::client::GraphClient;
use crate::graph::walk::GraphWalk;
use crate::graph::{GraphConfig, GraphError};

// One value per run: the size of the dump variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    Dump(DumpSource),
    Graph {
        config: Arc<GraphConfig>,
        /// `--to dump:<dir>`: capture everything fetched there.
        capture: Option<PathBuf>,
    },
}

#[derive(Debug)]
pub struct Captured {
    pub path: PathBuf,
    pub records: u64,
    pub indicators: u64,
}

/// What a completed source run produced besides its records.
#[derive(Debug, Default)]
pub struct SourceReport {
    /// The captured dump, the number of records written to it, and of those the indicators.
    pub captured: Option<Captured>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Dump(#[from] crate::dump::SourceError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("the source stopped unexpectedly: {0}")]
    Crashed(String),
}

impl Source {
    /// Streams every record into `out`; returns when the source is exhausted or `out` is closed.
    pub async fn run(self, out: mpsc::Sender<SourceRecord>) -> Result<SourceReport, RunError> {
        match self {
            Source::Dump(dump) => {
                tokio::task::spawn_blocking(move || {
                    dump.run(&mut |record| {
                        if out.blocking_send(record).is_ok() {
                            Flow::Continue
                        } else {
                            Flow::Stop
                        }
                    })
                })
                .await
                .map_err(|e| RunError::Crashed(e.to_string()))??;
                Ok(SourceReport::default())
            }
            Source::Graph { config, capture } => {
                let client = Arc::new(GraphClient::new(&config)?);
                let mut walk = GraphWalk::new(client, config);
                let writer = match &capture {
                    Some(path) => {
                        let writer = DumpWriter::create(path).map_err(|e| {
                            GraphError::Invalid(format!(
                                "cannot create the dump {}: {e}",
                                path.display()
                            ))
                        })?;
                        let writer = Arc::new(Mutex::new(writer));
                        walk = walk.capturing(writer.clone());
                        Some((path.clone(), writer))
                    }
                    None => None,
                };
                walk.run(out).await?;
                drop(walk);
                let captured = match writer {
                    Some((path, writer)) => {
                        // Lookup tasks finishing after the walk still hold a handle for a moment.
                        let mut shared = writer;
                        let mut waited = std::time::Duration::ZERO;
                        let writer = loop {
                            match Arc::try_unwrap(shared) {
                                Ok(mutex) => {
                                    break mutex.into_inner().unwrap_or_else(|e| e.into_inner());
                                }
                                Err(_) if waited > std::time::Duration::from_secs(60) => {
                                    return Err(GraphError::Invalid(
                                        "the dump is still in use after the walk ended".into(),
                                    )
                                    .into());
                                }
                                Err(still_shared) => {
                                    shared = still_shared;
                                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                                    waited += std::time::Duration::from_millis(20);
                                }
                            }
                        };
                        let (records, indicators) = writer.commit().map_err(|e| {
                            GraphError::Invalid(format!("writing the dump {}: {e}", path.display()))
                        })?;
                        Some(Captured {
                            path,
                            records,
                            indicators,
                        })
                    }
                    None => None,
                };
                Ok(SourceReport { captured })
            }
        }
    }
}
