//! Envelope packing: objects, kept as the JSON they were serialized to once, are packed into
//! TAXII envelopes `{"objects":[…]}` whose exact serialized size stays within the API root's
//! `max_content_length`. The body is built by concatenation, never by re-serializing.

use ctiport_model::stix::EncodedObject;

use crate::push::PushError;

const OPEN: &str = r#"{"objects":["#;
const CLOSE: &str = "]}";
/// Bytes of an empty envelope.
pub const ENVELOPE_OVERHEAD: usize = OPEN.len() + CLOSE.len();
/// Kept free under `max_content_length`, for servers that count a little differently.
pub const SAFETY_MARGIN: u64 = 256;
/// Envelopes are aimed at this size even when the server accepts more, so that memory stays
/// small and a retried request costs little. A larger object still goes, alone.
pub const DEFAULT_TARGET_BYTES: usize = 4 * 1024 * 1024;
/// Most objects in one envelope (servers answer with a status listing each of them).
pub const DEFAULT_MAX_OBJECTS: usize = 5_000;

/// Size limits of the envelopes sent to one API root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeLimits {
    /// No envelope body is ever larger than this.
    pub max_bytes: usize,
    /// Envelopes are closed when the next object would take them past this; only an envelope of
    /// one object may exceed it (up to `max_bytes`).
    pub target_bytes: usize,
    pub max_objects: usize,
}

impl EnvelopeLimits {
    /// The limits for a server that announced `max_content_length`.
    pub fn for_max_content_length(max_content_length: u64) -> Result<Self, PushError> {
        let max_bytes = max_content_length.saturating_sub(SAFETY_MARGIN);
        if max_bytes < 1024 {
            return Err(PushError::Refused(format!(
                "the API root's max_content_length ({max_content_length} bytes) is too small to \
                 hold an envelope"
            )));
        }
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        Ok(EnvelopeLimits {
            max_bytes,
            target_bytes: max_bytes.min(DEFAULT_TARGET_BYTES),
            max_objects: DEFAULT_MAX_OBJECTS,
        })
    }
}

/// An object that cannot be sent in any envelope the server accepts.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "object {id} is {bytes} bytes serialized, more than the {limit} bytes an envelope may hold \
     under the API root's max_content_length"
)]
pub struct ObjectTooLarge {
    pub id: String,
    pub bytes: usize,
    pub limit: usize,
}

impl From<ObjectTooLarge> for PushError {
    fn from(error: ObjectTooLarge) -> Self {
        PushError::Refused(error.to_string())
    }
}

/// Objects to POST together, with the exact size of their envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    objects: Vec<EncodedObject>,
    bytes: usize,
}

impl Envelope {
    pub fn empty() -> Self {
        Envelope::from_objects(Vec::new())
    }

    pub fn from_objects(objects: Vec<EncodedObject>) -> Self {
        let content: usize = objects.iter().map(|o| o.json.len()).sum();
        let commas = objects.len().saturating_sub(1);
        Envelope {
            bytes: ENVELOPE_OVERHEAD + content + commas,
            objects,
        }
    }

    pub fn objects(&self) -> &[EncodedObject] {
        &self.objects
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The exact length of [`Envelope::body`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The bytes a `bytes()`-sized request body carries: the objects' JSON, verbatim.
    pub fn body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.bytes);
        body.extend_from_slice(OPEN.as_bytes());
        for (i, object) in self.objects.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(object.json.as_bytes());
        }
        body.extend_from_slice(CLOSE.as_bytes());
        body
    }

    /// Two envelopes with the first and the second half of the objects (for HTTP 413).
    pub fn split(self) -> (Envelope, Envelope) {
        let mut first = self.objects;
        let second = first.split_off(first.len() / 2);
        (
            Envelope::from_objects(first),
            Envelope::from_objects(second),
        )
    }

    fn added_bytes(&self, object: &EncodedObject) -> usize {
        object.json.len() + usize::from(!self.objects.is_empty())
    }

    fn push(&mut self, object: EncodedObject) {
        self.bytes += self.added_bytes(&object);
        self.objects.push(object);
    }
}

/// Fills envelopes as objects arrive and hands each one out when it is full.
#[derive(Debug)]
pub struct Packer {
    limits: EnvelopeLimits,
    current: Envelope,
}

impl Packer {
    pub fn new(limits: EnvelopeLimits) -> Self {
        Packer {
            limits,
            current: Envelope::empty(),
        }
    }

    /// Adds `object`; returns the previous envelope when `object` did not fit in it. An object
    /// that cannot fit in any envelope is an error.
    pub fn push(&mut self, object: EncodedObject) -> Result<Option<Envelope>, ObjectTooLarge> {
        let alone = ENVELOPE_OVERHEAD + object.json.len();
        if alone > self.limits.max_bytes {
            return Err(ObjectTooLarge {
                id: object.id.to_string(),
                bytes: object.json.len(),
                limit: self.limits.max_bytes - ENVELOPE_OVERHEAD,
            });
        }
        let fits = self.current.bytes + self.current.added_bytes(&object)
            <= self.limits.target_bytes
            && self.current.len() < self.limits.max_objects.max(1);
        let full = if fits || self.current.is_empty() {
            None
        } else {
            Some(std::mem::replace(&mut self.current, Envelope::empty()))
        };
        self.current.push(object);
        Ok(full)
    }

    /// The last, partly filled envelope, if any.
    pub fn flush(&mut self) -> Option<Envelope> {
        if self.current.is_empty() {
            None
        } else {
            Some(std::mem::replace(&mut self.current, Envelope::empty()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use proptest::prelude::*;

    fn object(n: usize, size: usize) -> EncodedObject {
        let id = format!("indicator--{n:08}");
        let head = format!(r#"{{"type":"indicator","id":"{id}","name":""#);
        let pad = size.saturating_sub(head.len() + 2);
        let json = format!("{head}{}\"}}", "é".repeat(pad / 2) + &"x".repeat(pad % 2));
        EncodedObject {
            id: id.into(),
            object_type: "indicator".into(),
            json: json.into(),
            references: Arc::from(Vec::<String>::new()),
        }
    }

    fn limits(max_bytes: usize, target_bytes: usize, max_objects: usize) -> EnvelopeLimits {
        EnvelopeLimits {
            max_bytes,
            target_bytes: target_bytes.min(max_bytes),
            max_objects,
        }
    }

    fn pack(
        objects: &[EncodedObject],
        limits: EnvelopeLimits,
    ) -> Result<Vec<Envelope>, ObjectTooLarge> {
        let mut packer = Packer::new(limits);
        let mut out = Vec::new();
        for o in objects {
            out.extend(packer.push(o.clone())?);
        }
        out.extend(packer.flush());
        Ok(out)
    }

    #[test]
    fn body_is_the_verbatim_objects() {
        let a = object(1, 60);
        let b = object(2, 70);
        let envelope = Envelope::from_objects(vec![a.clone(), b.clone()]);
        let body = envelope.body();
        assert_eq!(body.len(), envelope.bytes());
        let text = String::from_utf8(body).unwrap_or_default();
        assert_eq!(text, format!(r#"{{"objects":[{},{}]}}"#, a.json, b.json));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(parsed["objects"][1]["id"], "indicator--00000002");
        assert_eq!(Envelope::empty().body(), br#"{"objects":[]}"#);
        assert_eq!(Envelope::empty().bytes(), ENVELOPE_OVERHEAD);
    }

    #[test]
    fn limits_follow_the_server() {
        let l = EnvelopeLimits::for_max_content_length(20_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.max_bytes, 20_000 - SAFETY_MARGIN as usize);
        assert_eq!(l.target_bytes, l.max_bytes);
        let big = EnvelopeLimits::for_max_content_length(200 * 1024 * 1024)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(big.target_bytes, DEFAULT_TARGET_BYTES);
        assert!(EnvelopeLimits::for_max_content_length(300).is_err());
    }

    #[test]
    fn an_object_too_large_for_any_envelope_is_a_clear_error() {
        let huge = object(7, 5_000);
        let error = pack(&[object(1, 100), huge], limits(2_000, 2_000, 100))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("indicator--00000007"), "{error}");
        assert!(error.contains("max_content_length"), "{error}");
    }

    #[test]
    fn an_object_above_the_target_goes_alone() {
        let envelopes = pack(
            &[object(1, 100), object(2, 1_500), object(3, 100)],
            limits(2_000, 1_000, 100),
        )
        .unwrap_or_default();
        let sizes: Vec<usize> = envelopes.iter().map(Envelope::len).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
    }

    #[test]
    fn split_halves_keep_every_object() {
        let objects: Vec<EncodedObject> = (0..5).map(|n| object(n, 80)).collect();
        let (a, b) = Envelope::from_objects(objects.clone()).split();
        assert_eq!((a.len(), b.len()), (2, 3));
        assert_eq!(a.bytes(), a.body().len());
        assert_eq!(b.bytes(), b.body().len());
        let rejoined: Vec<EncodedObject> = a.objects().iter().chain(b.objects()).cloned().collect();
        assert_eq!(rejoined, objects);
    }

    proptest! {
        #[test]
        fn envelopes_respect_the_limits_and_hold_every_object_once(
            sizes in proptest::collection::vec(40usize..3_000, 0..200),
            max_bytes in 1_024usize..8_000,
            target in 1_024usize..8_000,
            max_objects in 1usize..50,
        ) {
            let objects: Vec<EncodedObject> =
                sizes.iter().enumerate().map(|(n, s)| object(n, *s)).collect();
            let limits = limits(max_bytes, target, max_objects);
            let result = pack(&objects, limits);
            let too_large = objects.iter().find(|o| ENVELOPE_OVERHEAD + o.json.len() > max_bytes);
            match (result, too_large) {
                (Err(ObjectTooLarge { id, .. }), Some(first)) => {
                    prop_assert_eq!(id, first.id.to_string());
                }
                (Ok(envelopes), None) => {
                    let mut seen = Vec::new();
                    for e in &envelopes {
                        prop_assert!(!e.is_empty());
                        let body = e.body();
                        prop_assert_eq!(body.len(), e.bytes());
                        prop_assert!(e.bytes() <= limits.max_bytes);
                        prop_assert!(e.len() <= max_objects);
                        if e.bytes() > limits.target_bytes {
                            prop_assert_eq!(e.len(), 1);
                        }
                        let parsed: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let ids = parsed["objects"].as_array().map(Vec::len).unwrap_or(0);
                        prop_assert_eq!(ids, e.len());
                        seen.extend(e.objects().iter().map(|o| o.id.clone()));
                    }
                    // Every object exactly once, in arrival order.
                    let wanted: Vec<Arc<str>> = objects.iter().map(|o| o.id.clone()).collect();
                    prop_assert_eq!(seen, wanted);
                    // No envelope was closed while the next object would still have fitted.
                    for pair in envelopes.windows(2) {
                        let next = &pair[1].objects()[0];
                        let would = pair[0].bytes() + 1 + next.json.len();
                        prop_assert!(
                            would > limits.target_bytes || pair[0].len() >= max_objects
                        );
                    }
                }
                (result, too_large) => {
                    prop_assert!(false, "unexpected {:?} with too-large {:?}",
                        result.map(|e| e.len()), too_large.map(|o| o.id.clone()));
                }
            }
        }
    }
}
