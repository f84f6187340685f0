//! The counts in the Prometheus text exposition (`GET /metrics` of the web
//! port): totals by type and by destination, windows by type, repeats.

use crate::counts::{Counts, WINDOWS};

impl Counts {
    /// The Prometheus text exposition of the counts; windows end at `now`.
    pub fn to_prometheus(&self, now: u64) -> String {
        let inner = self.lock();
        let mut out = String::from(
            "# HELP eventflow_counter_events_total Events counted by type since the counter started (or since the feeds it read began).\n\
             # TYPE eventflow_counter_events_total counter\n",
        );
        for (t, n) in &inner.totals.by_type {
            out.push_str(&format!(
                "eventflow_counter_events_total{{type=\"{t}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP eventflow_counter_destination_events_total Events counted by destination.\n\
             # TYPE eventflow_counter_destination_events_total counter\n",
        );
        for (d, n) in &inner.totals.by_destination {
            out.push_str(&format!(
                "eventflow_counter_destination_events_total{{destination=\"{d}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP eventflow_counter_window_events Events counted by type in the last window.\n\
             # TYPE eventflow_counter_window_events gauge\n",
        );
        for (name, length) in WINDOWS {
            for (t, n) in inner.window(now, *length).by_type {
                out.push_str(&format!(
                    "eventflow_counter_window_events{{type=\"{t}\",window=\"{name}\"}} {n}\n"
                ));
            }
        }
        out.push_str(&format!(
            "# HELP eventflow_counter_duplicates_total Events that arrived again (redelivered, or both delivered and read from a feed), not counted again.\n\
             # TYPE eventflow_counter_duplicates_total counter\n\
             eventflow_counter_duplicates_total {}\n",
            inner.duplicates
        ));
        out
    }
}
