//! Helpers shared by the end-to-end tests and `e2e-measure`, one concern a
//! module (see `e2e/README.md` for the map). Every public item is
//! re-exported here, so tests `use eventflow_e2e::*` (but [`burst`]'s, used by
//! path: `burst::burst`, `burst::timeline`).

pub mod broker;
pub mod browser;
pub mod burst;
pub mod chaos;
pub mod cluster;
pub mod cost;
pub mod counter;
pub mod dashboard;
pub mod external;
pub mod feeds;
pub mod forward;
pub mod http;
pub mod images;
pub mod install;
pub mod invariants;
pub mod load;
pub mod managed;
pub mod outage;
pub mod plugin;
pub mod pods;
pub mod run;
pub mod spring;
pub mod tools;
pub mod wait;

pub use broker::*;
pub use browser::*;
pub use chaos::*;
pub use cluster::*;
pub use counter::*;
pub use dashboard::*;
pub use external::*;
pub use feeds::*;
pub use forward::*;
pub use http::*;
pub use images::*;
pub use install::*;
pub use invariants::*;
pub use load::*;
pub use managed::*;
pub use outage::*;
pub use plugin::*;
pub use pods::*;
pub use run::*;
pub use spring::*;
pub use tools::*;
pub use wait::*;
