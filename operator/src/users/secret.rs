//! The Secret of an app's broker user, `<stream>-<app>-broker`: the keys
//! of a managed broker's credentials Secret (`uri`, `username`, `password`,
//! `host`, `port`, `vhost`), so the app's containers read it exactly as
//! they read the broker's. The password is generated once, when the Secret
//! is created, and lives nowhere else; the other keys follow the broker.
//! Deleting the Secret rotates the password: the next reconcile creates it
//! again with a new one (and a new uid, which rolls the app's pods).

use std::collections::BTreeMap;

use eventflow_contract::env;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use lapin::uri::AMQPUri;

use crate::{
    Error, Result,
    apply::random_token,
    context::Context,
    fingerprint,
    naming::{self, MANAGER},
    validate::ValidStream,
};

/// The kind under which our writes are remembered (see `apply::record`).
pub const KIND: &str = "Secret";

/// Length of a generated password (alphanumeric: about 190 bits).
const PASSWORD_LENGTH: usize = 32;

/// What an app's broker Secret holds, as the reconcile needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSecret {
    pub name: String,
    pub password: String,
    /// [`revision`] of the Secret: a new one means a new password or CA.
    pub revision: String,
}

/// What the app's pods must restart for: the Secret's uid (a new one is a
/// new password) and, when the broker has a CA, that CA's fingerprint.
pub fn revision(uid: &str, data: &BTreeMap<String, String>) -> String {
    match data.get(env::BROKER_CA_KEY) {
        Some(ca) => format!("{uid}/ca-{:016x}", fingerprint::of_bytes(ca.as_bytes())),
        None => uid.to_owned(),
    }
}

/// [`revision`] of a stored Secret.
pub fn stored_revision(secret: &Secret) -> String {
    revision(&secret.uid().unwrap_or_default(), &text(secret))
}

/// The Secret's data for `user`/`password` on the broker of `admin_uri`
/// (its scheme, host, port, vhost and query kept), with the CA the broker
/// is verified with when it has one (`ca.crt`).
pub fn data(
    admin_uri: &str,
    ca: Option<&str>,
    user: &str,
    password: &str,
) -> Result<BTreeMap<String, String>> {
    let bad = |problem: String| Error::Secret {
        secret: "broker URI".into(),
        problem,
    };
    let amqp: AMQPUri = admin_uri
        .parse()
        .map_err(|e| bad(format!("the broker URI does not parse: {e}")))?;
    let mut url = reqwest::Url::parse(admin_uri.trim())
        .map_err(|e| bad(format!("the broker URI does not parse: {e}")))?;
    url.set_username(user)
        .and_then(|()| url.set_password(Some(password)))
        .map_err(|()| bad("the broker URI cannot carry credentials".into()))?;
    let mut data = BTreeMap::from([
        ("uri".to_owned(), url.to_string()),
        ("username".to_owned(), user.to_owned()),
        ("password".to_owned(), password.to_owned()),
        ("host".to_owned(), amqp.authority.host.clone()),
        ("port".to_owned(), amqp.authority.port.to_string()),
        ("vhost".to_owned(), amqp.vhost.clone()),
    ]);
    if let Some(ca) = ca {
        data.insert(env::BROKER_CA_KEY.to_owned(), ca.to_owned());
    }
    Ok(data)
}

use crate::apply::secret_text as text;

fn bytes(data: &BTreeMap<String, String>) -> BTreeMap<String, ByteString> {
    data.iter()
        .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
        .collect()
}

/// Makes the Secret of `app`'s user `user` exist with the broker of
/// `admin_uri`: created with a new password when missing (or without one),
/// its other keys updated when the broker moved. `cached` is the Secret as
/// the watch cache has it (`None`: read it).
pub async fn ensure(
    ctx: &Context,
    stream: &ValidStream<'_>,
    app: &str,
    user: &str,
    admin_uri: &str,
    cached: Option<Option<Secret>>,
) -> Result<AppSecret> {
    let name = naming::app_broker_secret(stream.name, app);
    let api = Api::<Secret>::namespaced(ctx.client.clone(), stream.namespace);
    let existing = match cached {
        Some(cached) => cached,
        None => api.get_opt(&name).await?,
    };
    let found = existing.as_ref().map(text);
    let password = match found.as_ref().and_then(|d| d.get("password")) {
        Some(p) if !p.is_empty() => p.clone(),
        _ => random_token(PASSWORD_LENGTH)?,
    };
    let wanted = data(
        admin_uri,
        ctx.amqp.ca(admin_uri).as_deref(),
        user,
        &password,
    )?;
    if let Some(secret) = existing.filter(|s| s.metadata.deletion_timestamp.is_none()) {
        if found.as_ref() != Some(&wanted) {
            // A merge patch: keys no longer wanted (a CA the broker dropped) are nulled.
            let mut changes = serde_json::to_value(bytes(&wanted)).unwrap_or_default();
            for gone in found
                .iter()
                .flat_map(|f| f.keys())
                .filter(|k| !wanted.contains_key(*k))
            {
                changes[gone] = serde_json::Value::Null;
            }
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": secret.metadata.resource_version},
                "data": changes,
            });
            let stored = api
                .patch(
                    &name,
                    &PatchParams {
                        field_manager: Some(MANAGER.into()),
                        ..Default::default()
                    },
                    &Patch::Merge(&patch),
                )
                .await?;
            // Our own write: its watch event wakes nobody.
            ctx.applied.remember(KIND, &stored.metadata, 0);
        }
        return Ok(AppSecret {
            name,
            password,
            revision: revision(&secret.uid().unwrap_or_default(), &wanted),
        });
    }
    let mut labels = naming::stream_labels(stream.name);
    labels.insert(naming::LABEL_APP.to_owned(), app.to_owned());
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(stream.namespace.to_owned()),
            labels: Some(labels),
            owner_references: Some(vec![stream.owner.clone()]),
            ..Default::default()
        },
        data: Some(bytes(&wanted)),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let created = match api.create(&params, &secret).await {
        Ok(created) => created,
        // Created meanwhile (another reconcile, or a deletion finishing):
        // the next reconcile reads it.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Err(Error::Secret {
                secret: name,
                problem: "created or deleted concurrently; read again next time".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    ctx.applied.remember(KIND, &created.metadata, 0);
    Ok(AppSecret {
        name,
        password,
        revision: revision(&created.uid().unwrap_or_default(), &wanted),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_is_the_brokers_uri_with_the_apps_credentials() {
        let d = data(
            "amqp://admin:secret@demo.shop.svc:5672/%2f?heartbeat=10",
            None,
            "eventflow.shop.ecommerce.order",
            "pw",
        )
        .unwrap();
        assert_eq!(
            d["uri"],
            "amqp://eventflow.shop.ecommerce.order:pw@demo.shop.svc:5672/%2f?heartbeat=10"
        );
        assert_eq!(d["username"], "eventflow.shop.ecommerce.order");
        assert_eq!(d["password"], "pw");
        assert_eq!(d["host"], "demo.shop.svc");
        assert_eq!(d["port"], "5672");
        assert_eq!(d["vhost"], "/");
        assert!(!d.contains_key("ca.crt"));
        let tls = data("amqps://a:b@h/v", Some("PEM"), "u", "p").unwrap();
        assert_eq!(tls["uri"], "amqps://u:p@h/v");
        assert_eq!(tls["port"], "5671");
        assert_eq!(
            tls["ca.crt"], "PEM",
            "the app verifies the broker with its CA"
        );
        assert!(data("not a uri", None, "u", "p").is_err());
    }
}
