//! The apps the page talks to: a Stream's counter (its counts over time)
//! and load simulator (its runs, and starting one). They are recognised by
//! their image (`…/counter`, `…/load-simulator`, any registry and tag) and
//! reached through their web role's Service, the URL the operator gives
//! peers. Only the paths each app serves for this are passed on:
//! everything else is a 404 naming what was asked.

use eventflow_operator::{
    api::{App, Stream},
    build::wiring,
};
use serde::Serialize;

/// What an app is to the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    Counter,
    LoadSimulator,
}

impl Kind {
    /// The app an image runs, from the last part of its repository.
    pub fn of_image(image: &str) -> Option<Kind> {
        let without_digest = image.split('@').next().unwrap_or(image);
        let name = without_digest.rsplit('/').next().unwrap_or(without_digest);
        let repository = name.split(':').next().unwrap_or(name);
        match repository {
            "counter" => Some(Kind::Counter),
            "load-simulator" => Some(Kind::LoadSimulator),
            _ => None,
        }
    }

    /// Whether a request of `method` to `path` (after the app) is one the
    /// page may make of this kind of app.
    pub fn allows(self, method: &axum::http::Method, path: &str) -> bool {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (self, method.as_str(), segments.as_slice()) {
            (Kind::Counter, "GET", ["v1", "counts"] | ["v1", "counts", "series"]) => true,
            (Kind::LoadSimulator, "GET" | "POST", ["v1", "runs"]) => true,
            (Kind::LoadSimulator, "GET", ["v1", "runs", id]) => valid_id(id),
            (Kind::LoadSimulator, "POST", ["v1", "runs", id, "commands", "stop"]) => valid_id(id),
            _ => false,
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// An app of a Stream the page can talk to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Companion {
    pub app: String,
    pub kind: Kind,
}

/// The Stream's apps the dashboard talks to (those with a web role).
pub fn companions(stream: &Stream) -> Vec<Companion> {
    stream
        .spec
        .apps
        .iter()
        .filter(|a| a.web.is_some())
        .filter_map(|a| {
            Some(Companion {
                app: a.name.clone(),
                kind: Kind::of_image(a.image.as_deref()?)?,
            })
        })
        .collect()
}

/// The app `name` of `stream` with its kind, if the page may talk to it.
pub fn find<'s>(stream: &'s Stream, name: &str) -> Option<(&'s App, Kind)> {
    let app = stream.spec.apps.iter().find(|a| a.name == name)?;
    app.web.as_ref()?;
    Some((app, Kind::of_image(app.image.as_deref()?)?))
}

/// Where an app's web role answers: in the cluster, its Service.
pub type Resolve = std::sync::Arc<dyn Fn(&str, &str, &App) -> Option<String> + Send + Sync>;

/// The Service URL the operator gives peers of the app.
pub fn service_url() -> Resolve {
    std::sync::Arc::new(wiring::web_url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_comes_from_the_repository_whatever_the_registry_and_tag() {
        for (image, kind) in [
            ("docker.io/eventflow/counter:dev", Some(Kind::Counter)),
            ("registry:5000/team/counter@sha256:abc", Some(Kind::Counter)),
            ("counter", Some(Kind::Counter)),
            (
                "docker.io/eventflow/load-simulator:1.2",
                Some(Kind::LoadSimulator),
            ),
            ("docker.io/eventflow/order:dev", None),
            ("docker.io/counter-fork/orders:dev", None),
        ] {
            assert_eq!(Kind::of_image(image), kind, "{image}");
        }
    }

    #[test]
    fn only_the_paths_each_app_serves_for_the_page_pass() {
        let (get, post) = (axum::http::Method::GET, axum::http::Method::POST);
        assert!(Kind::Counter.allows(&get, "/v1/counts/series"));
        assert!(Kind::Counter.allows(&get, "v1/counts"));
        assert!(!Kind::Counter.allows(&post, "/v1/counts"));
        assert!(!Kind::Counter.allows(&get, "/metrics"));
        assert!(Kind::LoadSimulator.allows(&post, "/v1/runs"));
        assert!(Kind::LoadSimulator.allows(&get, "/v1/runs/3f2a-9c"));
        assert!(Kind::LoadSimulator.allows(&post, "/v1/runs/3f2a/commands/stop"));
        assert!(!Kind::LoadSimulator.allows(&get, "/v1/runs/../admin"));
        assert!(!Kind::LoadSimulator.allows(&get, "/v1/counts"));
        assert!(!Kind::LoadSimulator.allows(&axum::http::Method::DELETE, "/v1/runs/1"));
    }

    #[test]
    fn a_streams_companions_are_its_counter_and_load_simulator_with_web_roles() {
        let stream: Stream =
            serde_yaml::from_str(include_str!("../../examples/30-ecommerce.yaml")).unwrap();
        assert_eq!(
            companions(&stream),
            vec![Companion {
                app: "counter".into(),
                kind: Kind::Counter
            }]
        );
        assert!(find(&stream, "counter").is_some());
        assert!(find(&stream, "order").is_none());
    }
}
