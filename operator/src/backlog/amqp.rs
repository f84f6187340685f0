//! Queue figures over AMQP, for brokers whose management API is not
//! configured or not reachable: a passive `queue.declare` answers the
//! messages ready and the consumers; unacknowledged counts and rates stay
//! unknown.

use std::{collections::BTreeMap, time::Duration};

use lapin::{Channel, options::QueueDeclareOptions, types::FieldTable};

use super::figures::QueueFigures;
use crate::{context::Context, topology::redact};

/// The broker refused because the queue does not exist (`NOT_FOUND`).
fn not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// Figures of every queue of `names` that exists (a missing one is left out).
pub async fn read(
    ctx: &Context,
    uri: &str,
    names: &[String],
) -> Result<BTreeMap<String, QueueFigures>, String> {
    let timeout = ctx.settings.amqp_timeout;
    let mut out = BTreeMap::new();
    let mut channel: Option<Channel> = None;
    for name in names {
        // A passive declare of a missing queue closes its channel: open another.
        let ch = match channel.take().filter(|c| c.status().connected()) {
            Some(ch) => ch,
            None => ctx.amqp.channel(uri).await.map_err(|e| e.to_string())?,
        };
        match passive(&ch, name, timeout).await {
            Ok(Some(figures)) => {
                out.insert(name.clone(), figures);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("broker {}: {e}", redact(uri))),
        }
        channel = Some(ch);
    }
    if let Some(ch) = channel.filter(|c| c.status().connected()) {
        let _ = tokio::time::timeout(timeout, ch.close(200, "done".into())).await;
    }
    Ok(out)
}

async fn passive(
    channel: &Channel,
    name: &str,
    timeout: Duration,
) -> Result<Option<QueueFigures>, String> {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declare = channel.queue_declare(name.into(), options, FieldTable::default());
    match tokio::time::timeout(timeout, declare).await {
        Ok(Ok(queue)) => Ok(Some(QueueFigures {
            ready: Some(i64::from(queue.message_count())),
            consumers: Some(i64::from(queue.consumer_count())),
            ..Default::default()
        })),
        Ok(Err(e)) if not_found(&e) => Ok(None),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within the AMQP timeout".into()),
    }
}
