//! Reconciles a `DeadLetterRedrive` (only on the leader, like every
//! controller): checks the Stream and its consumer group, makes the Stream
//! its owner, then inspects the group's DLQ or moves its messages back in
//! slices of at most `Settings::redrive_slice` (see [`crate::redrive`]),
//! keeping the counts in status as it goes. Status is the redrive's memory:
//! each slice starts from a fresh read of it (not the watch cache, which may
//! lag our own writes), so `maxMessages` holds across slices, restarts and
//! leader changes. A finished redrive (Succeeded or Failed) is never run
//! again; its spec is immutable.

use std::{sync::Arc, time::Instant};

use eventflow_contract::names;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use crate::{
    Error, Result,
    api::{
        DEFAULT_INSPECT, DeadLetterRedrive, DeadLetterRedriveStatus, MAX_INSPECT, RedriveMode,
        RedrivePhase, Stream, set_condition,
    },
    context::Context,
    naming::MANAGER,
    redrive::{self, MoveError, PassOutcome, Progress, Tally, Target, select::Selector},
    resolve::{self, Broker},
};

/// Condition type: True once the redrive succeeded or failed.
pub const COMPLETE: &str = "Complete";

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Why a redrive cannot be done (terminal: phase Failed).
struct Fail {
    reason: &'static str,
    message: String,
}

fn fail(reason: &'static str, message: impl Into<String>) -> Fail {
    Fail {
        reason,
        message: message.into(),
    }
}

/// Writes `status` (server-side apply of the status subresource).
async fn write(
    api: &Api<DeadLetterRedrive>,
    name: &str,
    status: &DeadLetterRedriveStatus,
) -> Result<()> {
    let body = json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "DeadLetterRedrive", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

pub async fn reconcile(obj: Arc<DeadLetterRedrive>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api = Api::<DeadLetterRedrive>::namespaced(ctx.client.clone(), &namespace);
    // Fresh, not from the cache: the counts in status are the progress.
    let Some(redrive) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    let mut status = redrive.status.clone().unwrap_or_default();
    if status.phase.finished() || redrive.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    match run(&ctx, &api, &redrive, &mut status).await {
        Ok(action) => Ok(action),
        Err(Step::Failed(f)) => {
            status.phase = RedrivePhase::Failed;
            // A batch whose commit was under way when the broker failed us.
            status.in_doubt += status.committing;
            status.committing = 0;
            status.message = Some(f.message.clone());
            status.completion_time = Some(now());
            set_condition(
                &mut status.conditions,
                COMPLETE,
                true,
                f.reason,
                &f.message,
                redrive.metadata.generation,
                &now(),
            );
            write(&api, &name, &status).await?;
            ctx.event(&redrive, true, f.reason, f.message).await;
            Ok(Action::await_change())
        }
        Err(Step::Retry(e)) => {
            // Not finished: tell why in status, retry with backoff.
            status.message = Some(format!("retrying: {e}"));
            let _ = write(&api, &name, &status).await;
            Err(e)
        }
    }
}

enum Step {
    Failed(Fail),
    Retry(Error),
}

impl From<Error> for Step {
    fn from(e: Error) -> Self {
        Step::Retry(e)
    }
}

impl From<kube::Error> for Step {
    fn from(e: kube::Error) -> Self {
        Step::Retry(e.into())
    }
}

impl From<Fail> for Step {
    fn from(f: Fail) -> Self {
        Step::Failed(f)
    }
}

async fn run(
    ctx: &Context,
    api: &Api<DeadLetterRedrive>,
    redrive: &DeadLetterRedrive,
    status: &mut DeadLetterRedriveStatus,
) -> std::result::Result<Action, Step> {
    let namespace = redrive.namespace().unwrap_or_default();
    let name = redrive.name_any();
    let spec = &redrive.spec;
    let streams = Api::<Stream>::namespaced(ctx.client.clone(), &namespace);
    let Some(stream) = streams.get_opt(&spec.stream).await? else {
        return Err(fail(
            "StreamNotFound",
            format!(
                "Stream {} does not exist in namespace {namespace}",
                spec.stream
            ),
        )
        .into());
    };
    own(api, redrive, &stream).await?;

    let queue = names::queue(&namespace, &spec.destination, &spec.group);
    let dlq = names::dead_letter_queue(&namespace, &spec.destination, &spec.group);
    let retry_queue = names::retry_queue(&namespace, &spec.destination, &spec.group);
    check_group(&stream, &spec.destination, &spec.group, &queue, &dlq)?;
    status.queue = Some(queue.clone());
    status.dead_letter_queue = Some(dlq.clone());

    let uri = match resolve::stream_broker(ctx, &namespace, &stream.spec.broker).await? {
        Broker::Missing => {
            return Err(fail(
                "BrokerNotFound",
                format!(
                    "EventBroker {} of Stream {} does not exist",
                    stream.spec.broker, spec.stream
                ),
            )
            .into());
        }
        Broker::Found(found) => match found.uri {
            Ok(uri) => uri,
            Err(e) => {
                return Err(fail(
                    e.reason(),
                    format!(
                        "cannot read the URI of EventBroker {}: {e}",
                        stream.spec.broker
                    ),
                )
                .into());
            }
        },
    };

    let started = status.phase == RedrivePhase::Running;
    if status.committing > 0 {
        // An operator stopped between writing `committing` and writing the
        // outcome: the broker either committed that batch or rolled it back.
        status.in_doubt += status.committing;
        status.committing = 0;
    }
    let ca = ctx.amqp.ca(&uri);
    let connection = match redrive::connect(&uri, ca.as_deref(), ctx.settings.amqp_timeout).await {
        Ok(c) => c,
        Err(e) if !started => {
            return Err(fail(
                "BrokerUnreachable",
                format!("cannot reach the broker of Stream {}: {e}", spec.stream),
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    if !started {
        status.phase = RedrivePhase::Running;
        status.start_time = Some(now());
        status.message = Some(match spec.mode {
            RedriveMode::Move => format!("moving messages from {dlq} to {queue}"),
            RedriveMode::Inspect => format!("reading {dlq}"),
        });
        set_condition(
            &mut status.conditions,
            COMPLETE,
            false,
            "Running",
            "the redrive is running",
            redrive.metadata.generation,
            &now(),
        );
    }
    write(api, &name, status).await?;

    let target = Target {
        dead_letter_queue: &dlq,
        queue: &queue,
        retry_queue: &retry_queue,
        uid: redrive.metadata.uid.as_deref().unwrap_or_default(),
    };
    let selector = Selector::new(&spec.routing_keys);
    let result = match spec.mode {
        RedriveMode::Inspect => {
            inspect(&connection, &target, &selector, spec.max_messages, status).await
        }
        RedriveMode::Move => {
            move_slice(
                ctx,
                api,
                &name,
                &connection,
                &target,
                &selector,
                spec.max_messages,
                status,
            )
            .await
        }
    };
    let _ = connection.close(200, "done".into()).await;
    let done = result?;
    if !done {
        // The slice ended with messages left: go on at once.
        return Ok(Action::requeue(std::time::Duration::from_millis(10)));
    }
    status.phase = RedrivePhase::Succeeded;
    status.completion_time = Some(now());
    let summary = summary(spec.mode, status);
    status.message = Some(summary.clone());
    set_condition(
        &mut status.conditions,
        COMPLETE,
        true,
        "Succeeded",
        &summary,
        redrive.metadata.generation,
        &now(),
    );
    write(api, &name, status).await?;
    ctx.event(redrive, false, "Succeeded", summary).await;
    Ok(Action::await_change())
}

fn summary(mode: RedriveMode, s: &DeadLetterRedriveStatus) -> String {
    let left = s.remaining.unwrap_or(0);
    match mode {
        RedriveMode::Inspect => format!(
            "listed {} dead letters; moved none; {left} in the DLQ",
            s.messages.len()
        ),
        RedriveMode::Move if s.in_doubt > 0 => format!(
            "moved {} messages back (and {} more in doubt after an operator restart: each is in the group queue or in the DLQ, once); skipped {}; {left} left in the DLQ",
            s.moved, s.in_doubt, s.skipped
        ),
        RedriveMode::Move => format!(
            "moved {} messages back; skipped {}; {left} left in the DLQ",
            s.moved, s.skipped
        ),
    }
}

/// Makes the Stream the redrive's owner, so it goes with it.
async fn own(
    api: &Api<DeadLetterRedrive>,
    redrive: &DeadLetterRedrive,
    stream: &Stream,
) -> Result<()> {
    let uid = stream.metadata.uid.clone().unwrap_or_default();
    let mut owners = redrive
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    if owners.iter().any(|o| o.uid == uid) {
        return Ok(());
    }
    owners.push(OwnerReference {
        api_version: Stream::api_version(&()).into_owned(),
        kind: Stream::kind(&()).into_owned(),
        name: stream.name_any(),
        uid,
        ..OwnerReference::default()
    });
    let patch = json!({"metadata": {"ownerReferences": owners}});
    api.patch(
        &redrive.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// The group must be one the Stream declared (its status lists the queues).
fn check_group(
    stream: &Stream,
    destination: &str,
    group: &str,
    queue: &str,
    dlq: &str,
) -> std::result::Result<(), Fail> {
    let destinations = stream
        .status
        .as_ref()
        .map(|s| s.destinations.as_slice())
        .unwrap_or_default();
    let queues: Vec<&str> = destinations
        .iter()
        .flat_map(|d| d.queues.iter().map(String::as_str))
        .collect();
    if queues.contains(&queue) && queues.contains(&dlq) {
        return Ok(());
    }
    let groups: Vec<&str> = queues
        .iter()
        .filter(|q| q.ends_with(".dlq"))
        .map(|q| q.trim_end_matches(".dlq"))
        .collect();
    let known = if groups.is_empty() {
        "it has declared no consumer group yet".to_owned()
    } else {
        format!("its group queues: {}", groups.join(", "))
    };
    Err(fail(
        "GroupNotFound",
        format!(
            "Stream {} has no consumer group {group} on destination {destination} ({known})",
            stream.name_any()
        ),
    ))
}

fn amqp_step(e: lapin::Error, dlq: &str) -> Step {
    if redrive::not_found(&e) {
        Step::Failed(fail(
            "QueueNotFound",
            format!("the dead-letter queue {dlq} does not exist on the broker"),
        ))
    } else {
        Step::Retry(Error::Amqp {
            uri_host: "the Stream's broker".into(),
            source: e,
        })
    }
}

async fn inspect(
    connection: &lapin::Connection,
    target: &Target<'_>,
    selector: &Selector,
    max: Option<i64>,
    status: &mut DeadLetterRedriveStatus,
) -> std::result::Result<bool, Step> {
    let limit = usize::try_from(max.unwrap_or(DEFAULT_INSPECT).clamp(1, MAX_INSPECT)).unwrap_or(20);
    let (messages, remaining) = redrive::inspect(connection, target, selector, limit)
        .await
        .map_err(|e| amqp_step(e, target.dead_letter_queue))?;
    status.messages = messages;
    status.remaining = Some(remaining.into());
    Ok(true)
}

/// Writes the progress of a pass on top of what earlier passes moved.
struct Reporter<'a> {
    api: &'a Api<DeadLetterRedrive>,
    name: &'a str,
    status: &'a mut DeadLetterRedriveStatus,
    before: i64,
}

impl Reporter<'_> {
    fn apply(&mut self, tally: Tally, committing: i64) {
        self.status.moved = self.before + tally.moved;
        self.status.skipped = tally.skipped;
        self.status.committing = committing;
    }
}

impl Progress for Reporter<'_> {
    async fn committing(&mut self, tally: Tally, batch: i64) -> Result<()> {
        self.apply(tally, batch);
        write(self.api, self.name, self.status).await
    }

    async fn committed(&mut self, tally: Tally) -> Result<()> {
        self.apply(tally, 0);
        write(self.api, self.name, self.status).await
    }
}

#[allow(clippy::too_many_arguments)]
async fn move_slice(
    ctx: &Context,
    api: &Api<DeadLetterRedrive>,
    name: &str,
    connection: &lapin::Connection,
    target: &Target<'_>,
    selector: &Selector,
    max: Option<i64>,
    status: &mut DeadLetterRedriveStatus,
) -> std::result::Result<bool, Step> {
    // In-doubt messages count against the budget: it is never exceeded.
    let budget = max.map(|m| (m - status.moved - status.in_doubt).max(0));
    let until = Instant::now() + ctx.settings.redrive_slice;
    let mut reporter = Reporter {
        api,
        name,
        before: status.moved,
        status,
    };
    let outcome = redrive::move_pass(
        connection,
        target,
        selector,
        budget,
        ctx.settings.redrive_batch,
        until,
        &mut reporter,
    )
    .await;
    match outcome {
        Ok(PassOutcome {
            tally,
            finished,
            remaining,
        }) => {
            reporter.apply(tally, 0);
            reporter.status.remaining = Some(remaining.into());
            Ok(finished)
        }
        Err(MoveError::Progress(e)) => Err(Step::Retry(e)),
        Err(MoveError::Amqp(e)) => Err(amqp_step(e, target.dead_letter_queue)),
    }
}
