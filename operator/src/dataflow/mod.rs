//! Streams written as Spring Cloud Data Flow definitions (`spec.definition`):
//! expanded, with the namespace's AppRegistrations and the Data Flow
//! deployment properties, into the apps of the YAML form before anything
//! else of the reconcile sees them. A definition that does not parse, names
//! an app nobody registered, or carries a property we do not understand
//! fails the whole Stream: nothing is deployed half-way.

mod deployment;
mod expand;
#[cfg(test)]
mod tests;

use std::{borrow::Cow, collections::BTreeMap};

pub use expand::{ExpandError, env_name, expand, registration_names};

use crate::api::{AppRegistration, AppRegistrationSpec, Stream};

/// The registrations of a namespace by name (`source.time`).
pub fn by_name<'a>(
    registrations: impl IntoIterator<Item = &'a AppRegistration>,
) -> BTreeMap<String, AppRegistrationSpec> {
    registrations
        .into_iter()
        .filter_map(|r| Some((r.metadata.name.clone()?, r.spec.clone())))
        .collect()
}

/// The Stream as the rest of the operator sees it: a definition expanded
/// into `spec.apps`; a Stream of apps as it is.
pub fn effective<'a>(
    stream: &'a Stream,
    registrations: &BTreeMap<String, AppRegistrationSpec>,
) -> Result<Cow<'a, Stream>, ExpandError> {
    let Some(definition) = &stream.spec.definition else {
        return Ok(Cow::Borrowed(stream));
    };
    let name = stream.metadata.name.as_deref().unwrap_or_default();
    let mut out = stream.clone();
    out.spec.apps = expand(
        name,
        definition,
        &stream.spec.deployment_properties,
        registrations,
    )?;
    Ok(Cow::Owned(out))
}
