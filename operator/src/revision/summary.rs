//! Revisions in a few words: each app's images and replicas, and what
//! changed from one revision to the next (for `history` and `rollback`).

use serde::Serialize;

use super::RevisionData;
use crate::api::{App, Packaging};

/// One app of a revision: its images and replicas per role.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AppSummary {
    pub name: String,
    /// `role=image` for each role (`all` with Combined packaging).
    pub images: Vec<String>,
    /// `role=replicas` for each role.
    pub replicas: Vec<String>,
}

/// `(role, image, replicas)` of each Deployment an app becomes.
fn roles(app: &App) -> Vec<(&'static str, String, i32)> {
    let image = |role: Option<&String>| {
        role.or(app.image.as_ref())
            .cloned()
            .unwrap_or_else(|| "?".into())
    };
    if app.packaging == Packaging::Combined {
        let replicas = app.web.as_ref().and_then(|w| w.replicas).unwrap_or(1);
        return vec![("all", image(None), replicas)];
    }
    let mut out = Vec::new();
    if let Some(web) = &app.web {
        out.push(("web", image(web.image.as_ref()), web.replicas.unwrap_or(1)));
    }
    if let Some(worker) = &app.worker {
        out.push((
            "worker",
            image(worker.image.as_ref()),
            worker.replicas.unwrap_or(1),
        ));
    }
    out
}

pub fn app_summary(app: &App) -> AppSummary {
    let roles = roles(app);
    AppSummary {
        name: app.name.clone(),
        images: roles.iter().map(|(r, i, _)| format!("{r}={i}")).collect(),
        replicas: roles.iter().map(|(r, _, n)| format!("{r}={n}")).collect(),
    }
}

/// One line: `account: eventflow/account:0.2 web×1 worker×2; audit: …`.
pub fn one_line(apps: &[App]) -> String {
    apps.iter()
        .map(|app| {
            let roles = roles(app);
            let mut images: Vec<&str> = roles.iter().map(|(_, i, _)| i.as_str()).collect();
            images.dedup();
            let replicas: Vec<String> = roles.iter().map(|(r, _, n)| format!("{r}×{n}")).collect();
            format!("{}: {} {}", app.name, images.join(","), replicas.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What changed from `before` to `after`, e.g. `account worker image a:1 → a:2`.
pub fn changes(before: &RevisionData, after: &RevisionData) -> Vec<String> {
    let mut out = Vec::new();
    let (b, a) = (&before.spec, &after.spec);
    for field in [
        "broker",
        "definition",
        "deploymentProperties",
        "deletionPolicy",
    ] {
        if b.get(field) != a.get(field) {
            out.push(format!("{field} changed"));
        }
    }
    for app in &after.apps {
        let Some(old) = before.apps.iter().find(|o| o.name == app.name) else {
            out.push(format!("app {} added", app.name));
            continue;
        };
        out.extend(app_changes(old, app));
    }
    for old in &before.apps {
        if !after.apps.iter().any(|a| a.name == old.name) {
            out.push(format!("app {} removed", old.name));
        }
    }
    out
}

fn app_changes(old: &App, new: &App) -> Vec<String> {
    let mut out = Vec::new();
    let name = &new.name;
    let (was, is) = (roles(old), roles(new));
    for (role, image, replicas) in &is {
        match was.iter().find(|(r, ..)| r == role) {
            None => out.push(format!("{name} {role} role added")),
            Some((_, old_image, old_replicas)) => {
                if old_image != image {
                    out.push(format!("{name} {role} image {old_image} → {image}"));
                }
                if old_replicas != replicas {
                    out.push(format!(
                        "{name} {role} replicas {old_replicas} → {replicas}"
                    ));
                }
            }
        }
    }
    for (role, ..) in &was {
        if !is.iter().any(|(r, ..)| r == role) {
            out.push(format!("{name} {role} role removed"));
        }
    }
    if old.env != new.env || old.env_from != new.env_from {
        out.push(format!("{name} env"));
    }
    if old.subscribes != new.subscribes || old.publishes != new.publishes {
        out.push(format!("{name} destinations"));
    }
    // Everything else (resources, ports, prefetch, packaging, spring…).
    let rest = |app: &App| {
        let mut app = app.clone();
        app.image = None;
        app.env.clear();
        app.env_from.clear();
        app.subscribes.clear();
        app.publishes.clear();
        for w in app.web.iter_mut() {
            w.image = None;
            w.replicas = None;
        }
        for w in app.worker.iter_mut() {
            w.image = None;
            w.replicas = None;
        }
        app
    };
    if rest(old) != rest(new) {
        out.push(format!("{name} settings"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StreamSpec;

    fn data(v: serde_json::Value) -> RevisionData {
        RevisionData::of(&serde_json::from_value::<StreamSpec>(v).unwrap())
    }

    fn shop(image: &str, replicas: i32, env: &str) -> RevisionData {
        data(serde_json::json!({"broker": "rabbit", "apps": [
            {"name": "account", "image": "account:1", "web": {},
             "worker": {"image": image, "replicas": replicas},
             "env": [{"name": "MODE", "value": env}],
             "subscribes": [{"destination": "account"}]}]}))
    }

    #[test]
    fn images_replicas_and_env_changes_are_named() {
        let before = shop("account:1", 1, "a");
        let after = shop("account:2", 3, "b");
        assert_eq!(
            changes(&before, &after),
            [
                "account worker image account:1 → account:2",
                "account worker replicas 1 → 3",
                "account env"
            ]
        );
        assert!(changes(&before, &before).is_empty());
        assert_eq!(
            one_line(&after.apps),
            "account: account:1,account:2 web×1 worker×3"
        );
        let s = app_summary(&after.apps[0]);
        assert_eq!(s.images, ["web=account:1", "worker=account:2"]);
        assert_eq!(s.replicas, ["web=1", "worker=3"]);
    }

    #[test]
    fn added_and_removed_apps_are_named() {
        let one = shop("account:1", 1, "a");
        let mut two = one.clone();
        let mut audit = two.apps[0].clone();
        audit.name = "audit".into();
        two.apps.push(audit);
        assert_eq!(changes(&one, &two), ["app audit added"]);
        assert_eq!(changes(&two, &one), ["app audit removed"]);
    }
}
