//! `scale STREAM APP[/ROLE]=N ...`: writes the replicas into the Stream's
//! spec (what `kubectl patch` would do; the operator applies them) —
//! `spec.apps[].web.replicas` / `.worker.replicas`, the web replicas of a
//! Combined app (its one Deployment), or `deployer.<app>.count` in
//! `spec.deploymentProperties` of a Stream made from a definition. One
//! merge patch of the Stream as read (unknown fields kept), guarded by the
//! resourceVersion read: a Stream changed meanwhile is an error, not a lost
//! write.

use anyhow::{Context as _, bail};
use eventflow_operator::api::{App, Packaging, Stream};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::cluster::Target;

/// The most replicas `scale` sets.
pub const MAX_REPLICAS: i32 = 100;

/// One `APP[/ROLE]=N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub app: String,
    pub role: Option<String>,
    pub replicas: i32,
}

/// Parses `APP[/ROLE]=N`.
pub fn parse_assignment(s: &str) -> Result<Assignment, String> {
    let (target, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected APP[/ROLE]=N, e.g. order/worker=3"))?;
    let replicas: i32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {n:?} is not a number of replicas"))?;
    if !(0..=MAX_REPLICAS).contains(&replicas) {
        return Err(format!(
            "{s:?}: replicas must be between 0 and {MAX_REPLICAS}"
        ));
    }
    let (app, role) = match target.split_once('/') {
        Some((app, role)) => (app, Some(role)),
        None => (target, None),
    };
    if app.is_empty() {
        return Err(format!("{s:?}: no app named"));
    }
    if let Some(role) = role
        && !matches!(role, "web" | "worker")
    {
        return Err(format!(
            "{s:?}: the role must be web or worker, not {role:?}"
        ));
    }
    Ok(Assignment {
        app: app.to_owned(),
        role: role.map(str::to_owned),
        replicas,
    })
}

/// One change the patch makes, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `account/web`, `log (deployer.log.count)`.
    pub what: String,
    pub from: Option<i32>,
    pub to: i32,
    pub field: Field,
}

/// Where a change is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// `spec.apps[index].<role>.replicas`.
    Replicas { index: usize, role: &'static str },
    /// `spec.deploymentProperties[key]`.
    Property(String),
}

/// The role of `app` an assignment scales, as (`web`|`worker`, index path).
fn role_of(app: &App, asked: Option<&str>) -> Result<&'static str, String> {
    let name = &app.name;
    match (app.packaging, asked) {
        (Packaging::Combined, Some("worker")) => Err(format!(
            "app {name} is Combined (one Deployment running both roles, scaled by its web replicas): scale {name} or {name}/web"
        )),
        (Packaging::Combined, _) if app.web.is_none() => Err(format!(
            "app {name} is Combined without a web role: there are no replicas to set"
        )),
        (Packaging::Combined, _) => Ok("web"),
        (Packaging::Separate, Some("web")) if app.web.is_none() => {
            Err(format!("app {name} has no web role"))
        }
        (Packaging::Separate, Some("worker")) if app.worker.is_none() => {
            Err(format!("app {name} has no worker role"))
        }
        (Packaging::Separate, Some("web")) => Ok("web"),
        (Packaging::Separate, Some(_)) => Ok("worker"),
        (Packaging::Separate, None) => match (&app.web, &app.worker) {
            (Some(_), Some(_)) => Err(format!(
                "app {name} has a web and a worker role: say {name}/web or {name}/worker"
            )),
            (Some(_), None) => Ok("web"),
            (None, Some(_)) => Ok("worker"),
            (None, None) => Err(format!("app {name} has no role")),
        },
    }
}

/// The changes `assignments` make to `stream`'s spec.
pub fn plan(stream: &Stream, assignments: &[Assignment]) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    if let Some(definition) = &stream.spec.definition {
        let parsed = eventflow_dsl::parse(definition)
            .map_err(|e| format!("the Stream's definition does not parse: {e}"))?;
        let labels: Vec<&str> = parsed.apps.iter().map(|a| a.label.as_str()).collect();
        for a in assignments {
            if !labels.contains(&a.app.as_str()) {
                return Err(format!(
                    "no app {} in the definition (apps: {})",
                    a.app,
                    labels.join(", ")
                ));
            }
            if let Some(role) = &a.role {
                return Err(format!(
                    "{}/{role}: the apps of a definition have one role each; scale {}",
                    a.app, a.app
                ));
            }
            let key = format!("deployer.{}.count", a.app);
            let from = stream
                .spec
                .deployment_properties
                .get(&key)
                .and_then(|v| v.parse().ok());
            changes.push(Change {
                what: format!("{} ({key})", a.app),
                from,
                to: a.replicas,
                field: Field::Property(key),
            });
        }
        return Ok(changes);
    }
    let names: Vec<&str> = stream.spec.apps.iter().map(|a| a.name.as_str()).collect();
    for a in assignments {
        let Some(index) = stream.spec.apps.iter().position(|x| x.name == a.app) else {
            return Err(format!(
                "no app {} in the Stream (apps: {})",
                a.app,
                names.join(", ")
            ));
        };
        let app = &stream.spec.apps[index];
        let role = role_of(app, a.role.as_deref())?;
        let from = match role {
            "web" => app.web.as_ref().map(|w| w.replicas.unwrap_or(1)),
            _ => app.worker.as_ref().map(|w| w.replicas.unwrap_or(1)),
        };
        let what = match app.packaging {
            Packaging::Combined => format!("{} (Combined)", a.app),
            Packaging::Separate => format!("{}/{role}", a.app),
        };
        changes.push(Change {
            what,
            from,
            to: a.replicas,
            field: Field::Replicas { index, role },
        });
    }
    Ok(changes)
}

/// The merge patch writing `changes` into `stream` (the Stream as read):
/// the whole `spec.apps` list (a merge patch replaces lists) and the
/// properties set, conditional on the resourceVersion read.
pub fn merge_patch(stream: &mut Value, changes: &[Change]) -> Value {
    let mut patch =
        json!({"metadata": {"resourceVersion": stream["metadata"]["resourceVersion"].clone()}});
    for c in changes {
        match &c.field {
            Field::Replicas { index, role } => {
                let app = &mut stream["spec"]["apps"][*index];
                if !app[*role].is_object() {
                    app[*role] = json!({});
                }
                app[*role]["replicas"] = json!(c.to);
                patch["spec"]["apps"] = stream["spec"]["apps"].clone();
            }
            Field::Property(key) => {
                patch["spec"]["deploymentProperties"][key.as_str()] = json!(c.to.to_string());
            }
        }
    }
    patch
}

/// `scale STREAM APP[/ROLE]=N ...`.
pub async fn scale(target: &Target, name: &str, assignments: &[Assignment]) -> anyhow::Result<()> {
    let cluster = target.connect().await?;
    let api = Api::<Stream>::namespaced(cluster.client, &cluster.namespace);
    let raw = Api::<DynamicObject>::namespaced_with(
        api.clone().into_client(),
        &cluster.namespace,
        &ApiResource::erase::<Stream>(&()),
    );
    let Some(read) = raw.get_opt(name).await? else {
        bail!("Stream {name} not found in namespace {}", cluster.namespace);
    };
    let mut value = serde_json::to_value(&read)?;
    let stream: Stream = serde_json::from_value(value.clone())
        .with_context(|| format!("Stream {name} is not a Stream this plugin understands"))?;
    let changes = plan(&stream, assignments).map_err(anyhow::Error::msg)?;
    let patch = merge_patch(&mut value, &changes);
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            bail!("Stream {name} changed while it was being scaled; run the command again")
        }
        Err(e) => return Err(e).context(format!("cannot scale Stream {name}")),
    }
    for c in &changes {
        let from = c
            .from
            .map_or_else(|| "default".to_owned(), |n| n.to_string());
        println!(
            "stream.eventflow.dev/{name} scaled {}: {from} -> {}",
            c.what, c.to
        );
    }
    if stream.spec.suspend {
        println!("the Stream is suspended: the replicas apply when it resumes");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stream(spec: Value) -> Stream {
        serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": "s"}, "spec": spec,
        }))
        .unwrap()
    }

    fn apps() -> Stream {
        stream(json!({"broker": "rabbit", "apps": [
            {"name": "order", "image": "o", "web": {"replicas": 2}, "worker": {}},
            {"name": "audit", "image": "a", "worker": {"replicas": 3}},
            {"name": "shop", "image": "s", "packaging": "Combined", "web": {}},
        ]}))
    }

    fn a(s: &str) -> Assignment {
        parse_assignment(s).unwrap()
    }

    #[test]
    fn assignments_name_an_app_a_role_and_replicas_in_range() {
        assert_eq!(
            a("order/worker=3"),
            Assignment {
                app: "order".into(),
                role: Some("worker".into()),
                replicas: 3
            }
        );
        assert_eq!(a("audit=0").role, None);
        assert!(
            parse_assignment("order=101")
                .unwrap_err()
                .contains("between 0 and 100")
        );
        assert!(
            parse_assignment("order=-1")
                .unwrap_err()
                .contains("between 0 and 100")
        );
        assert!(
            parse_assignment("order=x")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_assignment("order")
                .unwrap_err()
                .contains("APP[/ROLE]=N")
        );
        assert!(
            parse_assignment("order/all=1")
                .unwrap_err()
                .contains("web or worker")
        );
    }

    #[test]
    fn each_role_is_written_where_the_operator_reads_it() {
        let changes = plan(&apps(), &[a("order/worker=4"), a("audit=0"), a("shop=2")]).unwrap();
        let fields: Vec<&Field> = changes.iter().map(|c| &c.field).collect();
        assert_eq!(
            fields,
            [
                &Field::Replicas {
                    index: 0,
                    role: "worker"
                },
                &Field::Replicas {
                    index: 1,
                    role: "worker"
                },
                &Field::Replicas {
                    index: 2,
                    role: "web"
                },
            ]
        );
        let mut raw = serde_json::to_value(apps()).unwrap();
        raw["metadata"]["resourceVersion"] = json!("42");
        raw["spec"]["apps"][0]["x-unknown"] = json!("kept");
        let patch = merge_patch(&mut raw, &changes);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        let apps = &patch["spec"]["apps"];
        assert_eq!(apps[0]["worker"]["replicas"], 4);
        assert_eq!(apps[0]["web"]["replicas"], 2, "the rest as read");
        assert_eq!(apps[0]["x-unknown"], "kept");
        assert_eq!(apps[1]["worker"]["replicas"], 0);
        assert_eq!(apps[2]["web"]["replicas"], 2);
        assert_eq!(changes[0].from, Some(1), "unset is the default of 1");
        assert_eq!(changes[1].from, Some(3));
        assert_eq!(changes[2].what, "shop (Combined)");
    }

    #[test]
    fn an_unknown_app_or_role_is_refused_with_what_there_is() {
        let e = plan(&apps(), &[a("nope=1")]).unwrap_err();
        assert!(
            e.contains("no app nope") && e.contains("order, audit, shop"),
            "{e}"
        );
        let e = plan(&apps(), &[a("order=1")]).unwrap_err();
        assert!(e.contains("order/web or order/worker"), "{e}");
        let e = plan(&apps(), &[a("audit/web=1")]).unwrap_err();
        assert!(e.contains("no web role"), "{e}");
        let e = plan(&apps(), &[a("shop/worker=1")]).unwrap_err();
        assert!(e.contains("Combined"), "{e}");
    }

    #[test]
    fn a_definition_stream_is_scaled_by_its_deployment_properties() {
        let s = stream(json!({"broker": "rabbit", "definition": "time | upper: transform | log"}));
        let changes = plan(&s, &[a("upper=2"), a("log=3")]).unwrap();
        let mut raw = serde_json::to_value(&s).unwrap();
        let patch = merge_patch(&mut raw, &changes);
        assert_eq!(
            patch["spec"],
            json!({"deploymentProperties": {"deployer.upper.count": "2", "deployer.log.count": "3"}})
        );
        assert!(
            plan(&s, &[a("transform=1")])
                .unwrap_err()
                .contains("apps: time, upper, log")
        );
        assert!(
            plan(&s, &[a("log/worker=1")])
                .unwrap_err()
                .contains("one role each")
        );
    }
}
