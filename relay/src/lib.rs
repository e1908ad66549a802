//! Tolk: a simultaneous-interpretation media relay.
//!
//! - [`media`]: the sans-IO media core (channels, continuity, fan-out, mix, SRTP), tested on
//!   simulated time;
//! - [`net`]: media shards — a sans-IO shard core ([`net::core`]) and a thin driver per thread
//!   with its UDP socket;
//! - the services: [`auth`] (who calls), [`events`] (events, capacity, live layouts),
//!   [`admission`] (who may listen now), [`floors`] (RTP and BBB floors), [`booths`] (booth links
//!   and the pure booth desk), [`usage`] (the report); [`app`] wires them together;
//! - [`http`]: the thin, typed HTTP edge (WHIP/WHEP, the JSON API, pages, metrics);
//! - [`store`]: events, bookings, tokens and usage in SQLite or PostgreSQL;
//! - [`bbb`]: a BigBlueButton meeting as an event's floor;
//! - [`server`]: a running relay; [`demo`]: the built-in voice-like floor.

pub mod admission;
pub mod app;
pub mod auth;
pub mod bbb;
pub mod booths;
pub mod capacity;
pub mod config;
pub mod demo;
pub mod events;
pub mod floors;
pub mod http;
pub mod ids;
pub mod languages;
pub mod media;
pub mod net;
pub mod server;
pub mod store;
pub mod usage;
