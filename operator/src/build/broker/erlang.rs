//! Erlang VM flags of a managed broker, derived from its resources.
//!
//! The Erlang VM starts one scheduler thread per core it sees, and each
//! spins for work before it sleeps. Beside the apps and the database on a
//! shared node, two schedulers of a broker that asked for a tenth of a core
//! compete with the pods that feed it: `make measure` at saturation on the
//! 2-core demo node gave 23.3 orders/s with the default and 28.4 with one
//! scheduler (broker CPU per order 16.3 → 10.8 ms). So the scheduler count
//! follows the CPU the broker is given — its limit, else its request,
//! rounded up — and without either the VM keeps its own default.

use k8s_openapi::api::core::v1::ResourceRequirements;

/// The variable RabbitMQ's start script appends to the VM's arguments.
pub const ARGS_VAR: &str = "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS";

/// Schedulers for the CPU in `resources` (limit first, then request), at
/// least one; `None` when neither is set or the quantity is unreadable.
pub fn schedulers(resources: Option<&ResourceRequirements>) -> Option<u32> {
    let resources = resources?;
    let cpu = [&resources.limits, &resources.requests]
        .into_iter()
        .flatten()
        .find_map(|map| map.get("cpu"))?;
    let millicores = millicores(&cpu.0)?;
    Some(millicores.div_ceil(1000).max(1) as u32)
}

/// `+S N:N` for the VM, when the resources say how many.
pub fn args(resources: Option<&ResourceRequirements>) -> Option<String> {
    schedulers(resources).map(|n| format!("+S {n}:{n}"))
}

/// A CPU quantity (`250m`, `1`, `1.5`, `2000m`) in millicores.
fn millicores(quantity: &str) -> Option<u64> {
    let quantity = quantity.trim();
    if let Some(milli) = quantity.strip_suffix('m') {
        return milli.parse().ok();
    }
    let cores: f64 = quantity.parse().ok()?;
    (cores.is_finite() && cores >= 0.0).then(|| (cores * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn cpu(limit: Option<&str>, request: Option<&str>) -> ResourceRequirements {
        let map = |v: Option<&str>| v.map(|v| BTreeMap::from([("cpu".into(), Quantity(v.into()))]));
        ResourceRequirements {
            limits: map(limit),
            requests: map(request),
            ..Default::default()
        }
    }

    #[test]
    fn the_limit_decides_then_the_request_rounded_up() {
        assert_eq!(schedulers(Some(&cpu(Some("2"), Some("100m")))), Some(2));
        assert_eq!(schedulers(Some(&cpu(None, Some("100m")))), Some(1));
        assert_eq!(schedulers(Some(&cpu(None, Some("1500m")))), Some(2));
        assert_eq!(schedulers(Some(&cpu(Some("2.5"), None))), Some(3));
        assert_eq!(schedulers(Some(&cpu(None, Some("0")))), Some(1));
        assert_eq!(
            args(Some(&cpu(None, Some("250m")))).as_deref(),
            Some("+S 1:1")
        );
    }

    #[test]
    fn without_cpu_the_vm_keeps_its_default() {
        assert_eq!(schedulers(None), None);
        assert_eq!(schedulers(Some(&cpu(None, None))), None);
        assert_eq!(schedulers(Some(&cpu(Some("lots"), None))), None);
        let memory_only = ResourceRequirements {
            requests: Some(BTreeMap::from([("memory".into(), Quantity("1Gi".into()))])),
            ..Default::default()
        };
        assert_eq!(args(Some(&memory_only)), None);
    }
}
