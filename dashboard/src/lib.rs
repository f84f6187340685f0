//! The eventflow dashboard: a read-only web UI of the Streams and
//! EventBrokers of a cluster (see README.md). [`graph`] is its view of a
//! Stream as a graph, [`overview`] the tables of the front page.

pub mod graph;
pub mod overview;
