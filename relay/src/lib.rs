//! Tolk: a simultaneous-interpretation media relay.
//!
//! - [`media`]: the sans-IO core (channels, continuity, fan-out), tested on simulated time;
//! - [`net`]: media shards (threads with a UDP socket and their WebRTC peers);
//! - [`http`]: WHIP/WHEP, the JSON API, pages and metrics;
//! - [`store`]: events in SQLite;
//! - [`app`]: the operations on events that tie these together;
//! - [`bbb`]: a BigBlueButton meeting as an event's floor;
//! - [`server`]: a running relay; [`demo`]: the built-in voice-like floor.

pub mod app;
pub mod auth;
pub mod bbb;
pub mod booth;
pub mod capacity;
pub mod config;
pub mod demo;
pub mod http;
pub mod ids;
pub mod languages;
pub mod media;
pub mod net;
pub mod server;
pub mod store;
pub mod usage;
