//! Broker users and their permissions through the RabbitMQ management API:
//! `PUT /api/users/<name>`, `PUT /api/permissions/<vhost>/<name>`,
//! `GET /api/users`, `DELETE /api/users/<name>`. Every call is idempotent.

use std::time::Duration;

use eventflow_contract::permissions::Permissions;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::{
    Error, Result,
    backlog::management::{Management, encode},
};

/// How long one management call may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `request`; a success (or, with `missing_ok`, a 404) is `Ok`.
async fn send(
    api: &Management,
    request: reqwest::RequestBuilder,
    what: &str,
    missing_ok: bool,
) -> Result<reqwest::Response> {
    let response = request
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| Error::Management(format!("{} {what}: {e}", api.base)))?;
    checked(api, response, what, missing_ok).await
}

async fn checked(
    api: &Management,
    response: reqwest::Response,
    what: &str,
    missing_ok: bool,
) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() || missing_ok && status == reqwest::StatusCode::NOT_FOUND {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(Error::Management(format!(
        "{} {what}: {status} {}",
        api.base,
        body.chars().take(200).collect::<String>()
    )))
}

/// Creates user `name` (no tags: it cannot use the management API) or sets
/// its password.
pub async fn put_user(api: &Management, name: &str, password: &str) -> Result<()> {
    let request = api
        .request(Method::PUT, &format!("/api/users/{}", encode(name)))
        .json(&json!({ "password": password, "tags": "" }));
    send(api, request, &format!("PUT user {name}"), false).await?;
    Ok(())
}

/// Sets the permissions of user `name` on `vhost`.
pub async fn put_permissions(
    api: &Management,
    vhost: &str,
    name: &str,
    permissions: &Permissions,
) -> Result<()> {
    let request = api
        .request(
            Method::PUT,
            &format!("/api/permissions/{}/{}", encode(vhost), encode(name)),
        )
        .json(&json!({
            "configure": permissions.configure,
            "write": permissions.write,
            "read": permissions.read,
        }));
    send(api, request, &format!("PUT permissions of {name}"), false).await?;
    Ok(())
}

#[derive(Deserialize)]
struct User {
    name: String,
}

/// The names of every user of the broker; `None` when the API's user may
/// not see them (only an `administrator` may manage users).
pub async fn users(api: &Management) -> Result<Option<Vec<String>>> {
    let request = api.request(Method::GET, "/api/users").timeout(TIMEOUT);
    let response = request
        .send()
        .await
        .map_err(|e| Error::Management(format!("{} GET users: {e}", api.base)))?;
    if matches!(
        response.status(),
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN
    ) {
        return Ok(None);
    }
    let response = checked(api, response, "GET users", false).await?;
    let users: Vec<User> = response
        .json()
        .await
        .map_err(|e| Error::Management(format!("{} GET users: {e}", api.base)))?;
    Ok(Some(users.into_iter().map(|u| u.name).collect()))
}

/// Deletes user `name` (and its permissions); gone already is fine.
pub async fn delete_user(api: &Management, name: &str) -> Result<()> {
    let request = api.request(Method::DELETE, &format!("/api/users/{}", encode(name)));
    send(api, request, &format!("DELETE user {name}"), true).await?;
    Ok(())
}
