//! Every source behind one interface: records go into a bounded channel, in order.

use std::sync::Arc;

use ctiport_model::record::SourceRecord;
use tokio::sync::mpsc;

use crate::collection::Flow;
use crate::dump::DumpSource;
use crate::graph::client::GraphClient;
use crate::graph::walk::GraphWalk;
use crate::graph::{GraphConfig, GraphError};

pub enum Source {
    Dump(DumpSource),
    Graph(Arc<GraphConfig>),
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
    pub async fn run(self, out: mpsc::Sender<SourceRecord>) -> Result<(), RunError> {
        match self {
            Source::Dump(dump) => tokio::task::spawn_blocking(move || {
                dump.run(&mut |record| {
                    if out.blocking_send(record).is_ok() {
                        Flow::Continue
                    } else {
                        Flow::Stop
                    }
                })
            })
            .await
            .map_err(|e| RunError::Crashed(e.to_string()))?
            .map_err(RunError::from),
            Source::Graph(config) => {
                let client = Arc::new(GraphClient::new(&config)?);
                GraphWalk::new(client, config)
                    .run(out)
                    .await
                    .map_err(RunError::from)
            }
        }
    }
}
