//! For unit tests: a [`Source`] that answers fixed Streams.

#![allow(clippy::unwrap_used)]

use eventflow_operator::api::Stream;

use crate::{http::Source, snapshot::Snapshot};

#[derive(Clone)]
pub struct Fixed(Vec<Stream>, tokio::sync::watch::Sender<u64>);

impl Fixed {
    pub fn new(streams: Vec<Stream>) -> Self {
        Fixed(streams, tokio::sync::watch::channel(0).0)
    }
}

impl Source for Fixed {
    fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.0.clone(), vec![], &[], vec![])
    }
    fn ready(&self) -> bool {
        true
    }
    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.1.subscribe()
    }
}
