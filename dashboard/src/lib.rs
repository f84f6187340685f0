//! The eventflow dashboard: a read-only web UI of the Streams and
//! EventBrokers of a cluster (see README.md). [`graph`] is its view of a
//! Stream as a graph, [`overview`] the tables of the front page,
//! [`snapshot`] what the API answers, [`cache`] the reflectors it reads
//! from and [`http`] the routes and the page; [`apps`] and [`proxy`] let
//! the page read a Stream's counter and drive its load simulator.

pub mod apps;
pub mod cache;
pub mod graph;
pub mod http;
pub mod overview;
pub mod problem;
pub mod proxy;
pub mod snapshot;
#[cfg(test)]
mod testing;
