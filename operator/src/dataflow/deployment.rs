//! Data Flow deployment properties of a definition: which keys are
//! understood, and what each sets on which app. Anything else is refused
//! by name rather than ignored.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What the deployment properties set on one app (by label) or on all (`*`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppDeployment {
    /// `deployer.<label>.count`.
    pub count: Option<i32>,
    /// `deployer.<label>.kubernetes.limits.<resource>`.
    pub limits: BTreeMap<String, Quantity>,
    /// `deployer.<label>.kubernetes.requests.<resource>`.
    pub requests: BTreeMap<String, Quantity>,
    /// `app.<label>.<property>`.
    pub properties: BTreeMap<String, String>,
}

impl AppDeployment {
    /// `self` over `base` (the `*` entry): a label's own keys win.
    fn over(&self, base: &AppDeployment) -> AppDeployment {
        let mut out = base.clone();
        out.count = self.count.or(base.count);
        out.limits.extend(self.limits.clone());
        out.requests.extend(self.requests.clone());
        out.properties.extend(self.properties.clone());
        out
    }
}

/// The deployment properties, parsed, keyed by label (`*` for every app).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deployment(BTreeMap<String, AppDeployment>);

/// The keys the README documents, for the message naming an unsupported one.
const SUPPORTED: &str = "deployer.<label>.count, deployer.<label>.kubernetes.limits.memory|cpu, \
deployer.<label>.kubernetes.requests.memory|cpu, app.<label>.<property> (label or *)";

impl Deployment {
    /// Parses every key, or names the first one that is not understood.
    pub fn parse(properties: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut out: BTreeMap<String, AppDeployment> = BTreeMap::new();
        for (key, value) in properties {
            let unsupported =
                || format!("unsupported deployment property `{key}` (supported: {SUPPORTED})");
            if let Some(rest) = key.strip_prefix("app.") {
                let (label, property) = rest.split_once('.').ok_or_else(unsupported)?;
                if label.is_empty() || property.is_empty() {
                    return Err(unsupported());
                }
                out.entry(label.to_owned())
                    .or_default()
                    .properties
                    .insert(property.to_owned(), value.clone());
                continue;
            }
            let rest = key.strip_prefix("deployer.").ok_or_else(unsupported)?;
            let (label, setting) = rest.split_once('.').ok_or_else(unsupported)?;
            let app = out.entry(label.to_owned()).or_default();
            match setting {
                "count" => {
                    let count = value.parse::<i32>().ok().filter(|c| (0..=100).contains(c));
                    app.count = Some(count.ok_or_else(|| {
                        format!("deployment property `{key}`: `{value}` is not a replica count from 0 to 100")
                    })?);
                }
                _ => {
                    let (kind, resource) = setting
                        .strip_prefix("kubernetes.")
                        .and_then(|s| s.split_once('.'))
                        .filter(|(_, r)| matches!(*r, "memory" | "cpu"))
                        .ok_or_else(unsupported)?;
                    if !is_quantity(value) {
                        return Err(format!(
                            "deployment property `{key}`: `{value}` is not a Kubernetes quantity (e.g. 512Mi, 500m)"
                        ));
                    }
                    let map = match kind {
                        "limits" => &mut app.limits,
                        "requests" => &mut app.requests,
                        _ => return Err(unsupported()),
                    };
                    map.insert(resource.to_owned(), Quantity(value.clone()));
                }
            }
        }
        Ok(Self(out))
    }

    /// Labels the properties name, other than `*`.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str).filter(|l| *l != "*")
    }

    /// What applies to the app labelled `label`.
    pub fn for_label(&self, label: &str) -> AppDeployment {
        let all = self.0.get("*").cloned().unwrap_or_default();
        match self.0.get(label) {
            Some(own) => own.over(&all),
            None => all,
        }
    }
}

/// A Kubernetes quantity: a decimal number and an optional suffix.
fn is_quantity(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &value[digits.len()..];
    !digits.is_empty()
        && digits.parse::<f64>().is_ok_and(|n| n >= 0.0)
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "Ki" | "Mi" | "Gi" | "Ti"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_labels_keys_win_over_the_wildcard() {
        let d = Deployment::parse(&props(&[
            ("deployer.*.count", "2"),
            ("deployer.*.kubernetes.limits.memory", "512Mi"),
            ("deployer.log.kubernetes.limits.memory", "1Gi"),
            ("deployer.log.kubernetes.requests.cpu", "100m"),
            ("app.*.greeting", "hi"),
            ("app.log.level", "WARN"),
        ]))
        .unwrap();
        let log = d.for_label("log");
        assert_eq!(log.count, Some(2));
        assert_eq!(log.limits["memory"], Quantity("1Gi".into()));
        assert_eq!(log.requests["cpu"], Quantity("100m".into()));
        assert_eq!(log.properties["greeting"], "hi");
        assert_eq!(log.properties["level"], "WARN");
        let time = d.for_label("time");
        assert_eq!(time.limits["memory"], Quantity("512Mi".into()));
        assert!(!time.properties.contains_key("level"));
        assert_eq!(d.labels().collect::<Vec<_>>(), ["log"]);
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_is_named() {
        for (key, value, fragment) in [
            (
                "deployer.log.kubernetes.environmentVariables",
                "A=1",
                "unsupported deployment property `deployer.log.kubernetes.environmentVariables`",
            ),
            (
                "spring.cloud.dataflow.skipper.platformName",
                "k8s",
                "unsupported deployment property",
            ),
            (
                "deployer.log.count",
                "many",
                "`many` is not a replica count",
            ),
            ("deployer.log.count", "101", "`101` is not a replica count"),
            (
                "deployer.log.kubernetes.limits.memory",
                "lots",
                "`lots` is not a Kubernetes quantity",
            ),
            ("app.log", "x", "unsupported deployment property `app.log`"),
        ] {
            let e = Deployment::parse(&props(&[(key, value)])).unwrap_err();
            assert!(e.contains(fragment), "{key}={value}: {e}");
        }
    }
}
