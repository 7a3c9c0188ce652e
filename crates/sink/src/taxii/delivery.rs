//! Delivering one envelope and accounting for every object in it: POST (halving on 413), wait for
//! the status to complete, then sort each object into stored now, already present, or failed.
//!
//! TAXII says a server MUST NOT report an exact duplicate as a failure, but medallion 3.0.0 does
//! ("Unable to process object" for any (id, `modified`) already stored). A failure is therefore
//! checked against what the collection holds: an object stored there with identical content is
//! *already present*, which is what an idempotent re-run wants. Anything else is a failure.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ctiport_model::stix::EncodedObject;
use serde_json::Value;
use tokio::time::Instant;

use super::envelope::Envelope;
use super::resources::Status;
use super::service::{Posted, TaxiiService};
use crate::push::{Failures, PushError};

/// What became of the objects of the envelopes delivered so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectTally {
    pub envelopes: u64,
    /// Objects the server stored because of this run.
    pub stored: u64,
    /// Objects the collection already held, identical.
    pub present: u64,
    /// Objects that are in neither.
    pub failures: Failures,
}

impl ObjectTally {
    pub fn delivered(&self) -> u64 {
        self.stored + self.present
    }

    fn fail(&mut self, id: &str, reason: &str) {
        self.failures.add(1, || format!("{id}: {reason}"));
        if self.failures.count <= 100 {
            tracing::warn!(id, "TAXII: object not stored: {reason}");
        }
    }
}

/// The server's verdict on one object of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Stored,
    /// Reported as failed; may still be an already-present duplicate.
    Failed(String),
}

/// Waits between polls of a pending status: 0.5 s doubling to at most 10 s.
pub fn poll_interval(poll: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(2u32.saturating_pow(poll.min(8)))
        .min(Duration::from_secs(10))
}

/// Delivers envelopes to one collection.
pub struct Courier<'a> {
    pub service: &'a TaxiiService,
    /// Whether the collection may be read, which is what tells a duplicate from a failure.
    pub can_read: bool,
    pub status_timeout: Duration,
}

impl Courier<'_> {
    /// Sends `envelope`, in halves while the server answers 413, and accounts for every object.
    pub async fn deliver(
        &self,
        envelope: Envelope,
        tally: &mut ObjectTally,
    ) -> Result<(), PushError> {
        let mut queue = vec![envelope];
        while let Some(envelope) = queue.pop() {
            match self.service.post(&envelope).await? {
                Posted::TooLarge if envelope.len() > 1 => {
                    tracing::debug!(
                        objects = envelope.len(),
                        bytes = envelope.bytes(),
                        "TAXII: HTTP 413, sending the envelope in two halves"
                    );
                    let (first, second) = envelope.split();
                    queue.push(second);
                    queue.push(first);
                }
                Posted::TooLarge => {
                    let object = &envelope.objects()[0];
                    return Err(PushError::Refused(format!(
                        "the server refused object {} ({} bytes) as too large (HTTP 413), \
                         although it is within the API root's max_content_length",
                        object.id,
                        object.json.len()
                    )));
                }
                Posted::Accepted(status) => {
                    let status = self.until_complete(status).await?;
                    tally.envelopes += 1;
                    self.account(&envelope, &status, tally).await?;
                    tracing::debug!(
                        objects = envelope.len(),
                        bytes = envelope.bytes(),
                        status = %status.id,
                        "TAXII: envelope delivered"
                    );
                }
            }
        }
        Ok(())
    }

    /// Polls `{api-root}/status/{id}/` while the status is pending, with a growing interval,
    /// until the overall timeout.
    async fn until_complete(&self, mut status: Status) -> Result<Status, PushError> {
        let deadline = Instant::now() + self.status_timeout;
        let mut polls = 0;
        while status.is_pending() {
            if Instant::now() >= deadline {
                return Err(PushError::Refused(format!(
                    "status {} is still pending after {} s ({} of {} objects unconfirmed); \
                     raise --taxii-status-timeout if the server is just slow",
                    status.id,
                    self.status_timeout.as_secs(),
                    status.pending_count,
                    status.total_count
                )));
            }
            let wait = poll_interval(polls).min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait).await;
            polls += 1;
            status = self.service.status(&status.id).await?;
        }
        Ok(status)
    }

    async fn account(
        &self,
        envelope: &Envelope,
        status: &Status,
        tally: &mut ObjectTally,
    ) -> Result<(), PushError> {
        let mut failed = Vec::new();
        for (object, verdict) in envelope.objects().iter().zip(verdicts(envelope, status)) {
            match verdict {
                Verdict::Stored => tally.stored += 1,
                Verdict::Failed(reason) => failed.push((object, reason)),
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        if !self.can_read {
            for (object, reason) in failed {
                tally.fail(
                    &object.id,
                    &format!(
                        "{reason} (the collection is not readable for this user, so an \
                         already-present duplicate cannot be told from a failure)"
                    ),
                );
            }
            return Ok(());
        }
        let ids: Vec<&str> = failed.iter().map(|(o, _)| &*o.id).collect();
        let stored = self.service.objects_with_ids(&ids).await?;
        let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
        for object in &stored {
            if let Some(id) = object.get("id").and_then(Value::as_str) {
                by_id.entry(id).or_default().push(object);
            }
        }
        for (object, reason) in failed {
            let versions = by_id
                .get(&*object.id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            match judge_duplicate(object, versions) {
                Duplicate::Identical => tally.present += 1,
                Duplicate::Conflict => tally.fail(
                    &object.id,
                    "the collection already holds a different object with the same id and \
                     modified (the server keeps the first; changed content needs a later \
                     modified)",
                ),
                Duplicate::Absent => tally.fail(&object.id, &reason),
            }
        }
        Ok(())
    }
}

/// Each object's verdict, from the status lists (or from the counts when a server leaves the
/// lists out, which TAXII allows).
pub fn verdicts(envelope: &Envelope, status: &Status) -> Vec<Verdict> {
    let successes: HashSet<&str> = status.successes.iter().map(|d| d.id.as_str()).collect();
    let failures: HashMap<&str, &str> = status
        .failures
        .iter()
        .map(|d| {
            let message = d.message.as_deref().unwrap_or("failed, no reason given");
            (d.id.as_str(), message)
        })
        .collect();
    let pendings: HashSet<&str> = status.pendings.iter().map(|d| d.id.as_str()).collect();
    let counts_say_all_stored = status.failure_count == 0
        && status.pending_count == 0
        && status.success_count >= envelope.len() as u64;
    envelope
        .objects()
        .iter()
        .map(|object| {
            let id: &str = &object.id;
            if let Some(message) = failures.get(id) {
                Verdict::Failed(format!("rejected by the server: {message}"))
            } else if successes.contains(id) {
                Verdict::Stored
            } else if pendings.contains(id) {
                Verdict::Failed("still pending although the status is complete".into())
            } else if counts_say_all_stored {
                Verdict::Stored
            } else {
                Verdict::Failed(format!(
                    "not confirmed by the server's status {} (success_count {}, failure_count {})",
                    status.id, status.success_count, status.failure_count
                ))
            }
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
pub enum Duplicate {
    /// The collection holds this exact object: nothing to do.
    Identical,
    /// The collection holds another object with the same id and version.
    Conflict,
    /// Not there at all: a real failure.
    Absent,
}

/// Compares `object` with the versions of its id that the collection holds, as JSON values (key
/// order and number spelling aside).
pub fn judge_duplicate(object: &EncodedObject, versions: &[&Value]) -> Duplicate {
    let Ok(ours) = serde_json::from_str::<Value>(&object.json) else {
        return Duplicate::Absent;
    };
    if versions.iter().any(|v| **v == ours) {
        return Duplicate::Identical;
    }
    let version_of = |v: &Value| v.get("modified").or_else(|| v.get("created")).cloned();
    let ours_version = version_of(&ours);
    if versions
        .iter()
        .any(|v| ours_version.is_none() || version_of(v) == ours_version)
    {
        Duplicate::Conflict
    } else {
        Duplicate::Absent
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::taxii::resources::StatusDetail;

    fn object(id: &str, json: &str) -> EncodedObject {
        EncodedObject {
            id: id.into(),
            object_type: id.split("--").next().unwrap_or_default().into(),
            json: json.into(),
            references: Arc::from(Vec::<String>::new()),
        }
    }

    fn detail(id: &str, message: Option<&str>) -> StatusDetail {
        StatusDetail {
            id: id.into(),
            message: message.map(str::to_owned),
        }
    }

    fn status(successes: &[&str], failures: &[&str], counts: (u64, u64)) -> Status {
        Status {
            id: "s1".into(),
            status: "complete".into(),
            total_count: counts.0 + counts.1,
            success_count: counts.0,
            failure_count: counts.1,
            pending_count: 0,
            successes: successes.iter().map(|i| detail(i, None)).collect(),
            failures: failures
                .iter()
                .map(|i| detail(i, Some("Unable to process object")))
                .collect(),
            pendings: Vec::new(),
        }
    }

    #[test]
    fn polls_back_off_to_a_ceiling() {
        assert_eq!(poll_interval(0), Duration::from_millis(500));
        assert_eq!(poll_interval(1), Duration::from_secs(1));
        assert_eq!(poll_interval(50), Duration::from_secs(10));
    }

    #[test]
    fn verdicts_follow_the_status_lists() {
        let envelope = Envelope::from_objects(vec![
            object("tool--a", "{}"),
            object("tool--b", "{}"),
            object("tool--c", "{}"),
        ]);
        let v = verdicts(&envelope, &status(&["tool--a"], &["tool--b"], (1, 1)));
        assert_eq!(v[0], Verdict::Stored);
        assert!(matches!(&v[1], Verdict::Failed(m) if m.contains("Unable to process object")));
        assert!(matches!(&v[2], Verdict::Failed(m) if m.contains("not confirmed")));
        // No lists, but the counts say everything was stored.
        let v = verdicts(&envelope, &status(&[], &[], (3, 0)));
        assert!(v.iter().all(|v| *v == Verdict::Stored));
    }

    #[test]
    fn a_duplicate_is_recognized_by_content() {
        let json = r#"{"type":"tool","id":"tool--a","created":"2024-05-01T00:00:00.000Z","modified":"2024-05-01T00:00:00.000Z","name":"Ä","confidence":50}"#;
        let ours = object("tool--a", json);
        // The server re-serializes: other key order, other spacing, escaped non-ASCII.
        let same: Value = serde_json::from_str(
            r#"{"name": "\u00c4", "confidence": 50, "id": "tool--a", "type": "tool",
               "modified": "2024-05-01T00:00:00.000Z", "created": "2024-05-01T00:00:00.000Z"}"#,
        )
        .unwrap_or_default();
        assert_eq!(judge_duplicate(&ours, &[&same]), Duplicate::Identical);

        let mut changed = same.clone();
        changed["name"] = "B".into();
        assert_eq!(judge_duplicate(&ours, &[&changed]), Duplicate::Conflict);

        let mut older = changed.clone();
        older["modified"] = "2023-01-01T00:00:00.000Z".into();
        assert_eq!(judge_duplicate(&ours, &[&older]), Duplicate::Absent);
        assert_eq!(judge_duplicate(&ours, &[]), Duplicate::Absent);
        assert_eq!(
            judge_duplicate(&ours, &[&older, &same]),
            Duplicate::Identical
        );
    }
}
