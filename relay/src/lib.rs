//! Tolk: a simultaneous-interpretation media relay.
//!
//! The library's public surface is what the `tolk` binary, the integration tests and the load
//! generator need: [`server`] (a running relay), [`config`], [`api`] (the HTTP API's bodies as
//! types), [`ids`], [`capacity`], [`store`] (for operator commands), [`bbb`] (a BigBlueButton
//! server's settings) and [`demo`] (the built-in voice-like floor). The media core and the shards
//! are public only for the benchmarks, hidden from the docs.
//!
//! Inside, the crate is:
//! - `media`: the sans-IO media core (channels, continuity, fan-out, mix, SRTP), tested on
//!   simulated time;
//! - `net`: media shards — a sans-IO shard core (`net::core`) and a thin driver per thread with
//!   its UDP socket;
//! - the services: `auth` (who calls), `events` (events, capacity, live layouts), `admission`
//!   (who may listen now), `floors` (RTP and BBB floors), `booths` (booth links and the pure booth
//!   desk), `usage` (the report); `app` wires them together;
//! - `http`: the thin, typed HTTP edge (WHIP/WHEP, the JSON API, pages, metrics);
//! - `store`: events, bookings, tokens and usage in SQLite or PostgreSQL;
//! - `bbb`: a BigBlueButton meeting as an event's floor;
//! - `cluster`: several nodes (Redis: nodes, origin leases, control messages) and the cascade
//!   from an event's origin node to its edges; `rtc_link`: the client-side WebRTC link the BBB
//!   floors and the cascade receive on.

#![warn(missing_docs, unreachable_pub)]

pub mod allow;
pub mod api;
pub mod bbb;
pub mod capacity;
pub mod config;
pub mod demo;
pub mod ids;
pub mod recorder;
pub mod server;
pub mod store;

#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod media;
#[doc(hidden)]
pub mod net;

mod admission;
mod app;
mod auth;
mod booths;
pub mod cluster;
mod connecting;
mod events;
mod floors;
mod http;
mod languages;
mod limits;
pub mod recording;
mod rtc_link;
mod usage;
