//! Support for Tolk's integration tests: the relay in-process, real WebRTC clients (str0m), test
//! audio and its measurement, and headless Chromium.

pub mod audio;
pub mod browser;
pub mod client;
pub mod relay;
