//! Mapping of Graph TI records to STIX 2.1: deterministic ids, patterns, profile and indicator
//! objects, per-run deduplication, and ctiport's own bundle checks.

pub mod ids;
pub mod mappings;
pub mod observable;
pub mod pattern;
