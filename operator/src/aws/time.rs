//! AWS's JSON protocols send timestamps as seconds since the epoch (a number); status holds
//! RFC 3339 strings.

use k8s_openapi::jiff::Timestamp;

/// Seconds since the epoch (with milliseconds) of an RFC 3339 time.
pub fn epoch(rfc3339: &str) -> Option<f64> {
    rfc3339
        .parse::<Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

/// The same of a Kubernetes time.
pub fn epoch_of(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> f64 {
    t.0.as_millisecond() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_becomes_epoch_seconds() {
        assert_eq!(
            super::epoch("2026-12-01T00:00:01.5Z"),
            Some(1_796_083_201.5)
        );
        assert_eq!(super::epoch("yesterday"), None);
    }
}
