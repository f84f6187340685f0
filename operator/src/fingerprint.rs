//! A stable 64-bit fingerprint (FNV-1a) of what the operator last wrote, so
//! a reconcile can tell "unchanged since our last write" without another
//! request. Stable across processes and Rust versions, unlike `DefaultHasher`.

use serde::Serialize;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// Fingerprint of raw bytes.
pub fn of_bytes(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Fingerprint of a value's JSON form (serde_json writes struct fields and
/// BTreeMaps in a fixed order, so equal values give equal fingerprints).
pub fn of<T: Serialize + ?Sized>(value: &T) -> u64 {
    serde_json::to_vec(value).map_or(0, |bytes| of_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_agree_and_a_changed_field_does_not() {
        let a = serde_json::json!({"image": "a:1", "replicas": 2});
        assert_eq!(of(&a), of(&a.clone()));
        let b = serde_json::json!({"image": "a:2", "replicas": 2});
        assert_ne!(of(&a), of(&b));
        assert_eq!(
            of_bytes(b""),
            OFFSET,
            "FNV-1a of nothing is its offset basis"
        );
    }
}
