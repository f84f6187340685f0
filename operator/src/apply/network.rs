//! The network step of a Stream: its NetworkPolicy ([`crate::build::network`])
//! server-side applied — skipped while the watch cache shows it as we wrote
//! it — or, for a Stream with `spec.network.isolate: false`, removed.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::{
    record::Tracking,
    stream::{apply_owned, orphans},
};
use crate::{
    Result,
    build::network::{NetworkInputs, network_policy},
    connection::BrokerWiring,
    context::Context,
    resolve,
    validate::ValidStream,
};

const KIND: &str = "NetworkPolicy";

/// Makes the Stream's NetworkPolicy what its spec, its broker (`uri`: the
/// port an external one is reached on) and the namespace's other Streams
/// (who calls whom) ask for.
pub async fn converge(
    ctx: &Context,
    stream: &ValidStream<'_>,
    broker: &BrokerWiring,
    uri: Option<&str>,
) -> Result<()> {
    let streams = resolve::expanded_streams(ctx, stream.namespace).await?;
    let inputs = NetworkInputs {
        streams: &streams,
        broker,
        broker_port: uri
            .and_then(|u| u.parse::<lapin::uri::AMQPUri>().ok())
            .map(|u| u.authority.port),
        operator_namespace: ctx.settings.operator_namespace.as_deref(),
    };
    let cache = ctx.network_policies.get();
    match network_policy(stream, &inputs) {
        Some(policy) => {
            apply_owned(ctx, KIND, &policy, cache, Tracking::ResourceVersion).await?;
        }
        None => {
            let removed = orphans::<NetworkPolicy>(ctx, KIND, stream, cache, &[]).await?;
            if !removed.is_empty() {
                ctx.event(
                    stream.stream,
                    false,
                    "NetworkPolicyRemoved",
                    format!(
                        "removed NetworkPolicy {} (spec.network.isolate is false)",
                        removed.join(", ")
                    ),
                )
                .await;
            }
        }
    }
    Ok(())
}
