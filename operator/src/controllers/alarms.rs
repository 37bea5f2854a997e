//! Deployment alarms read from Alertmanager: ECS watches CloudWatch alarms in the ALARM state;
//! kubecs watches the alerts Alertmanager holds active (not silenced, not inhibited), by
//! `alertname`. One read serves every service for a short while, so a rollout of many
//! services does not ask once per service.

use std::time::{Duration, Instant};

use axum::http::{Method, Request, header};
use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::Mutex;

/// How long one read of the firing alerts serves.
const FRESH_FOR: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(5);

/// An Alertmanager (its v2 API).
pub struct Alertmanager {
    url: String,
    last: Mutex<Option<(Instant, Vec<String>)>>,
}

impl Alertmanager {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            last: Mutex::new(None),
        }
    }

    /// The names of the alerts firing now.
    pub async fn firing(&self) -> Result<Vec<String>, String> {
        let mut last = self.last.lock().await;
        if let Some((at, names)) = last.as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return Ok(names.clone());
        }
        let url = format!(
            "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
            self.url
        );
        let req = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let answer = crate::http::send(req, "Alertmanager", TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status.is_success() {
            return Err(format!("Alertmanager answered {} ({url})", answer.status));
        }
        let names = alert_names(&answer.body)?;
        *last = Some((Instant::now(), names.clone()));
        Ok(names)
    }
}

/// The `alertname` of each active alert in a `GET /api/v2/alerts` answer.
pub fn alert_names(body: &[u8]) -> Result<Vec<String>, String> {
    let alerts: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("Alertmanager's answer: {e}"))?;
    let mut names: Vec<String> = alerts
        .iter()
        .filter(|a| {
            a.pointer("/status/state")
                .and_then(|s| s.as_str())
                .is_none_or(|s| s == "active")
        })
        .filter_map(|a| a.pointer("/labels/alertname")?.as_str().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    #[test]
    fn active_alerts_are_read_by_name() {
        let body = serde_json::json!([
            {"labels": {"alertname": "HighErrorRate", "severity": "critical"}, "status": {"state": "active"}},
            {"labels": {"alertname": "Quiet"}, "status": {"state": "suppressed"}},
            {"labels": {"alertname": "HighErrorRate"}, "status": {"state": "active"}},
            {"labels": {"job": "x"}, "status": {"state": "active"}},
        ])
        .to_string();
        assert_eq!(
            super::alert_names(body.as_bytes()).unwrap(),
            vec!["HighErrorRate".to_string()]
        );
        assert!(super::alert_names(b"{").is_err());
    }
}
