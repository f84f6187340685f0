//! The users step: every app of a Stream connects to the broker as a user
//! of its own, `eventflow.<namespace>.<stream>.<app>`, whose password is in
//! the app's Secret ([`secret`]) and whose permissions
//! ([`eventflow_contract::permissions`]) are derived from the app's
//! bindings: configure nothing, write the exchanges it publishes to (and
//! its groups' retry exchanges), read its groups' queues. The operator
//! keeps the broker's administrative user for the topology, redrives and
//! figures. One user per app, not per role: the roles of an app share its
//! bindings.
//!
//! Users are made through the management API ([`api`]): a managed broker
//! always has it; an external one when its connection Secret has the key
//! `managementUri`. Without it the apps share the connection Secret's user,
//! and the Stream's `BrokerUsers` condition says so. Users of apps no
//! longer in the spec are deleted with their Secrets; a deleted Stream's
//! users go in its finalizer ([`remove_all`]).
//!
//! A user is written (password and permissions) when what it should be
//! differs from what this process last wrote ([`Granted`]) — on start, on a
//! new password, on new permissions, when the EventBroker changed — or when
//! it is missing from the broker's list of users, which every reconcile
//! reads anyway to find the users of removed apps (a broker that lost its
//! data, or a user deleted by hand, gets it back within a resync).

pub mod api;
pub mod secret;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use eventflow_contract::permissions::Permissions;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, runtime::reflector::ObjectRef};

use crate::{
    Error, Result,
    backlog::{self, management::Management},
    build::wiring::app_bindings,
    connection::{BrokerSecret, BrokerWiring, MANAGED, URI_KEY},
    context::Context,
    fingerprint, naming,
    resolve::has_listed,
    validate::ValidStream,
};

/// Where an app's own credentials are, and which Secret they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCredentials {
    pub secret: BrokerSecret,
    /// The Secret's [`secret::revision`], on the pod template: a rotated
    /// password or broker CA rolls the pods.
    pub revision: String,
}

/// How a Stream's apps connect to the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Users {
    /// Each app as its own user (by app name). `Err` when writing the
    /// users on the broker failed this time (the Secrets exist).
    PerApp {
        apps: BTreeMap<String, AppCredentials>,
        written: std::result::Result<(), (&'static str, String)>,
    },
    /// Every app as the connection Secret's user: why.
    Shared(String),
}

impl Users {
    /// The Secret `app` reads its broker credentials from.
    pub fn credentials<'a>(&'a self, app: &str) -> Option<&'a AppCredentials> {
        match self {
            Users::PerApp { apps, .. } => apps.get(app),
            Users::Shared(_) => None,
        }
    }
}

/// What this process last wrote for each broker user (a fingerprint of
/// password, permissions and broker), to skip writing it again.
#[derive(Default)]
pub struct Granted(Mutex<HashMap<String, u64>>);

impl Granted {
    fn is_current(&self, user: &str, fingerprint: u64) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(user) == Some(&fingerprint)
    }

    fn record(&self, user: &str, fingerprint: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(user.to_owned(), fingerprint);
    }

    fn forget(&self, user: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(user);
    }
}

/// The management API of the Stream's broker, or why there is none.
async fn management(
    ctx: &Context,
    namespace: &str,
    wiring: &BrokerWiring,
    admin_uri: &str,
) -> Result<std::result::Result<Management, String>> {
    let amqp: lapin::uri::AMQPUri = admin_uri.parse().map_err(|e| Error::Secret {
        secret: wiring.secret.name.clone(),
        problem: format!("the broker URI does not parse: {e}"),
    })?;
    match backlog::management_api(ctx, namespace, wiring, &amqp).await {
        Ok(Some(api)) => Ok(Ok(api)),
        Ok(None) => Ok(Err(format!(
            "every app connects as the user of Secret {}: it has no key {} (the broker's management API), so no user per app can be made",
            wiring.secret.name,
            backlog::MANAGEMENT_URI_KEY
        ))),
        Err(e) => Err(Error::Management(e)),
    }
}

/// The app's Secret from the watch cache (`None`: not listed yet, read it).
fn cached_secret(ctx: &Context, namespace: &str, name: &str) -> Option<Option<Secret>> {
    let store = ctx.secrets.get().filter(|s| has_listed(*s))?;
    Some(
        store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| (*s).clone()),
    )
}

/// Makes every app's user and Secret exist, with the permissions its
/// bindings need; removes those of apps no longer in the spec.
pub async fn converge(
    ctx: &Context,
    stream: &ValidStream<'_>,
    wiring: &BrokerWiring,
    admin_uri: &str,
    broker_version: &str,
) -> Result<Users> {
    let api = match management(ctx, stream.namespace, wiring, admin_uri).await? {
        Ok(api) => api,
        Err(why) => return Ok(Users::Shared(why)),
    };
    // A broker that does not answer yet (a managed one starting) still
    // gets its apps' Secrets now, so the apps never start on a shared user
    // only to roll onto their own a minute later.
    let existing = match api::users(&api).await {
        Ok(Some(existing)) => Ok(existing),
        Ok(None) => {
            return Ok(Users::Shared(format!(
                "every app connects as the broker's user of Secret {}: the management API at {} does not let it manage users (it needs the administrator tag)",
                wiring.secret.name, api.base
            )));
        }
        Err(e) => Err(e),
    };
    let vhost = admin_uri
        .parse::<lapin::uri::AMQPUri>()
        .map(|u| u.vhost)
        .unwrap_or_default();
    let mut apps = BTreeMap::new();
    let mut wanted = Vec::new();
    for app in &stream.spec().apps {
        let user = naming::broker_user(stream.namespace, stream.name, &app.name);
        let name = naming::app_broker_secret(stream.name, &app.name);
        let cached = cached_secret(ctx, stream.namespace, &name);
        let secret = secret::ensure(ctx, stream, &app.name, &user, admin_uri, cached).await?;
        let permissions = Permissions::of(&app_bindings(stream.namespace, app, wiring.queue_type));
        wanted.push((user, secret.password.clone(), permissions));
        apps.insert(
            app.name.clone(),
            AppCredentials {
                secret: BrokerSecret {
                    name: secret.name,
                    key: URI_KEY.into(),
                },
                revision: secret.revision,
            },
        );
    }
    let written = match existing {
        Ok(existing) => write(ctx, stream, &api, &vhost, broker_version, &wanted, existing).await,
        Err(e) => Err(e),
    }
    .map_err(|e| (e.reason(), e.to_string()));
    Ok(Users::PerApp { apps, written })
}

/// The users for a reconcile that cannot make the apps' Secrets (the
/// broker's URI unreadable, the API refusing), failing with `error`: the apps keep their own users when every app's
/// Secret exists (nothing rolls back to a shared user); on a managed broker
/// (always per app) they are wired to their Secrets-to-be, which the next
/// reconcile makes; else they share the connection Secret's user.
pub fn from_cache(
    ctx: &Context,
    stream: &ValidStream<'_>,
    wiring: &BrokerWiring,
    error: &Error,
) -> Users {
    let why = error.to_string();
    let mut apps = BTreeMap::new();
    for app in &stream.spec().apps {
        let name = naming::app_broker_secret(stream.name, &app.name);
        let revision = match cached_secret(ctx, stream.namespace, &name) {
            Some(Some(secret)) => secret::stored_revision(&secret),
            _ if wiring.mode == MANAGED => String::new(),
            _ => return Users::Shared(why),
        };
        apps.insert(
            app.name.clone(),
            AppCredentials {
                secret: BrokerSecret {
                    name,
                    key: URI_KEY.into(),
                },
                revision,
            },
        );
    }
    Users::PerApp {
        apps,
        written: Err((error.reason(), why)),
    }
}

/// Writes the users that changed, then deletes the Stream's users (and
/// Secrets) of apps no longer in the spec (among the `existing` users).
async fn write(
    ctx: &Context,
    stream: &ValidStream<'_>,
    api: &Management,
    vhost: &str,
    broker_version: &str,
    wanted: &[(String, String, Permissions)],
    existing: Vec<String>,
) -> Result<()> {
    for (user, password, permissions) in wanted {
        let fingerprint = fingerprint::of(&(
            password,
            &permissions.configure,
            &permissions.write,
            &permissions.read,
            vhost,
            &api.base,
            broker_version,
        ));
        // Written before and still there (a broker that lost its users, or
        // a user deleted by hand, gets it back).
        if ctx.users.is_current(user, fingerprint) && existing.contains(user) {
            continue;
        }
        api::put_user(api, user, password).await?;
        api::put_permissions(api, vhost, user, permissions).await?;
        ctx.users.record(user, fingerprint);
    }
    let prefix = naming::broker_user_prefix(stream.namespace, stream.name);
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), stream.namespace);
    for user in &existing {
        let Some(app) = naming::broker_user_app(user, &prefix) else {
            continue;
        };
        if wanted.iter().any(|(u, _, _)| u == user) {
            continue;
        }
        api::delete_user(api, user).await?;
        ctx.users.forget(user);
        let name = naming::app_broker_secret(stream.name, app);
        ctx.applied.forget(secret::KIND, stream.namespace, &name);
        match secrets.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            user,
            "removed the broker user of an app no longer in the Stream"
        );
    }
    Ok(())
}

/// Deletes every broker user of a deleted Stream (its Secrets go with it:
/// the Stream owns them). Nothing to do without a management API.
pub async fn remove_all(
    ctx: &Context,
    namespace: &str,
    stream: &str,
    wiring: &BrokerWiring,
    admin_uri: &str,
) -> Result<()> {
    let Ok(api) = management(ctx, namespace, wiring, admin_uri).await? else {
        return Ok(());
    };
    let prefix = naming::broker_user_prefix(namespace, stream);
    for user in api::users(&api).await?.unwrap_or_default() {
        if naming::broker_user_app(&user, &prefix).is_some() {
            api::delete_user(&api, &user).await?;
            ctx.users.forget(&user);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::naming;

    #[test]
    fn a_streams_users_are_told_apart_from_other_streams_users() {
        let prefix = naming::broker_user_prefix("shop", "a");
        let user = naming::broker_user("shop", "a", "order");
        assert_eq!(user, "eventflow.shop.a.order");
        assert_eq!(naming::broker_user_app(&user, &prefix), Some("order"));
        // Stream `a` of the same namespace never claims Stream `a-b`'s nor
        // another namespace's users, nor the administrator.
        let other = naming::broker_user("shop", "a-b", "order");
        assert_eq!(naming::broker_user_app(&other, &prefix), None);
        let elsewhere = naming::broker_user("shop2", "a", "order");
        assert_eq!(naming::broker_user_app(&elsewhere, &prefix), None);
        assert_eq!(naming::broker_user_app("eventflow", &prefix), None);
        assert_eq!(naming::broker_user_app("eventflow.shop.a.", &prefix), None);
    }
}
