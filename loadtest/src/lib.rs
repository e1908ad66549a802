//! Tolk's load generator: replays an event profile against a relay with real WebRTC peers,
//! measures what arrives and reports it.

pub mod capacity;
pub mod churn;
pub mod cluster;
pub mod engine;
pub mod janus;
pub mod profile;
pub mod recording;
pub mod report;
pub mod results;
pub mod run;
pub mod stamp;
pub mod sysmon;
pub mod tally;
pub mod webrtc_rs;
