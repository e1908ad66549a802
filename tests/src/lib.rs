//! Support for Tolk's integration tests: the relay in-process, real WebRTC clients (str0m), test
//! audio and its measurement, headless Chromium (also as a phone) and Firefox, a BigBlueButton stand-in,
//! a LiveKit stand-in, and nginx in front.

pub mod audio;
pub mod bbb;
pub mod browser;
pub mod client;
pub mod cluster;
pub mod firefox;
pub mod livekit;
pub mod log;
pub mod mobile;
pub mod nginx;
pub mod process;
pub mod recording;
pub mod redis;
pub mod relay;
