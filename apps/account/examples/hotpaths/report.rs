//! The figures of each path — ours beside its ceiling — as a line when a
//! side ends and as one table at the end of the run.

use crate::cpu::Spent;

/// One measured side of a path.
pub(crate) struct Side {
    pub(crate) name: &'static str,
    pub(crate) ops: u64,
    /// Seconds (PerfTest's: `ops` over its own rate).
    pub(crate) secs: f64,
    pub(crate) spent: Spent,
    /// The process CPU is PerfTest's JVM (a child of ours), start included.
    pub(crate) jvm: bool,
}

impl Side {
    pub(crate) fn measured(name: &'static str, ops: u64, spent: Spent) -> Self {
        let side = Self {
            name,
            ops,
            secs: spent.wall.as_secs_f64(),
            spent,
            jvm: false,
        };
        side.line();
        side
    }

    pub(crate) fn perftest(name: &'static str, ops: u64, rate: f64, spent: Spent) -> Self {
        let side = Self {
            name,
            ops,
            secs: if rate > 0.0 {
                ops as f64 / rate
            } else {
                f64::NAN
            },
            spent,
            jvm: true,
        };
        side.line();
        side
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn per_op(&self, secs: f64) -> f64 {
        secs * 1e6 / self.ops as f64
    }

    fn process(&self) -> f64 {
        self.per_op(if self.jvm {
            self.spent.children
        } else {
            self.spent.process
        })
    }

    fn web(&self) -> Option<f64> {
        (!self.jvm && self.spent.web > 0.0).then(|| self.per_op(self.spent.web))
    }

    fn postgres(&self) -> Option<f64> {
        self.spent.postgres.map(|s| self.per_op(s))
    }

    fn broker(&self) -> Option<f64> {
        self.spent.broker.map(|s| self.per_op(s))
    }

    /// The line printed when the side ends.
    fn line(&self) {
        println!(
            "   {}: {} ops in {:.2} s = {:.0} ops/s; CPU per op: {} {}{}{}{}",
            self.name,
            self.ops,
            self.secs,
            self.rate(),
            if self.jvm { "PerfTest JVM" } else { "process" },
            us(Some(self.process())),
            self.web().map_or(String::new(), |w| format!(
                " (web role threads {})",
                us(Some(w))
            )),
            self.postgres()
                .map_or(String::new(), |p| format!(", PostgreSQL {}", us(Some(p)))),
            self.broker()
                .map_or(String::new(), |b| format!(", RabbitMQ {}", us(Some(b)))),
        );
    }
}

/// One path: what ours did beside its ceiling.
pub(crate) struct PathFigures {
    pub(crate) title: &'static str,
    pub(crate) ours: Vec<Side>,
    pub(crate) ceiling: Side,
}

fn us(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.0} µs"),
        _ => "—".to_owned(),
    }
}

fn ratio(ours: Option<f64>, ceiling: Option<f64>) -> String {
    match (ours, ceiling) {
        (Some(o), Some(c)) if c > 0.0 && o.is_finite() && c.is_finite() => format!("{:.2}", o / c),
        _ => "—".to_owned(),
    }
}

fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// The table of every path: each side's figures, then ours/ceiling.
pub(crate) fn table(paths: &[PathFigures]) {
    println!();
    row(&[
        "path".into(),
        "side".into(),
        "ops".into(),
        "s".into(),
        "ops/s".into(),
        "CPU/op: process".into(),
        "of it web role threads".into(),
        "PostgreSQL backends".into(),
        "RabbitMQ".into(),
    ]);
    row(&vec!["---".to_owned(); 9]);
    for p in paths {
        for side in p.ours.iter().chain([&p.ceiling]) {
            row(&[
                p.title.into(),
                side.name.into(),
                side.ops.to_string(),
                format!("{:.2}", side.secs),
                format!("{:.0}", side.rate()),
                format!(
                    "{}{}",
                    us(Some(side.process())),
                    if side.jvm { " (JVM, start incl.)" } else { "" }
                ),
                us(side.web()),
                us(side.postgres()),
                us(side.broker()),
            ]);
        }
        for side in &p.ours {
            let c = &p.ceiling;
            row(&[
                p.title.into(),
                format!("{} / ceiling", side.name),
                String::new(),
                String::new(),
                ratio(Some(side.rate()), Some(c.rate())),
                // A JVM's CPU includes its start and JIT: no basis for a ratio.
                ratio(Some(side.process()), (!c.jvm).then(|| c.process())),
                ratio(side.web(), c.web()),
                ratio(side.postgres(), c.postgres()),
                ratio(side.broker(), c.broker()),
            ]);
        }
    }
}
