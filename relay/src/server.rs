//! A running Tolk: the HTTP listener bound, the app started, and a way to stop both. Used by the
//! `tolk` binary and, in-process, by the integration tests.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tracing::info;

use crate::api::{EventView, FloorStatus};
use crate::app::{App, AppError};
use crate::config::Settings;
use crate::ids::EventId;
use crate::store::Store;

/// Why a relay did not start, or a request to it failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The HTTP address could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The store, the media shards or a service did not start, or refused the request.
    #[error(transparent)]
    App(Box<dyn std::error::Error + Send + Sync>),
}

impl From<AppError> for ServerError {
    fn from(e: AppError) -> Self {
        Self::App(Box::new(e))
    }
}

/// A running relay.
pub struct Server {
    app: Arc<App>,
    /// The bound HTTP address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// Where `/metrics` is served, if anywhere (the real port when 0 was asked for).
    pub metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Bind the HTTP address, open the store, start the media shards and the services.
    pub async fn start(mut settings: Settings) -> Result<Self, ServerError> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Listen { addr: settings.listen, source })?;
        let addr =
            listener.local_addr().map_err(|source| ServerError::Listen { addr: settings.listen, source })?;
        if settings.public_url_from_listen {
            settings.public_url = format!("http://{addr}");
        }
        let metrics_listener = match settings.metrics_listen {
            Some(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .map_err(|source| ServerError::Listen { addr: at, source })?,
            ),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let app = App::start(settings).await?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = crate::http::router(app.clone());
        let edge = app.settings.edge;
        let task = tokio::spawn(crate::http::edge::serve(listener, router, edge, async {
            let _ = stopped.await;
        }));
        let metrics_task = metrics_listener.map(|listener| {
            let router = crate::http::metrics_router(app.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "metrics server stopped with an error");
                }
            })
        });
        info!(%addr, public_url = %app.settings.public_url, metrics = ?metrics_addr, "Tolk is listening");
        Ok(Self { app, addr, metrics_addr, shutdown: Some(shutdown), task, metrics_task })
    }

    /// Stop accepting requests, wait for the HTTP side to finish, then write every usage fact
    /// and close the node's open listening and on-air intervals (a graceful stop loses none).
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(metrics) = self.metrics_task.take() {
            metrics.abort();
        }
        let _ = (&mut self.task).await;
        self.app.shutdown().await;
    }

    /// Events the node holds per-event state for (cached live events, booth desks, BBB floors);
    /// an event whose window closed holds none.
    pub fn events_held(&self) -> usize {
        self.app.events_held()
    }

    /// The settings it runs with (the public URL filled in).
    pub fn settings(&self) -> &Settings {
        &self.app.settings
    }

    /// Its store (operator tools and tests read it).
    pub fn store(&self) -> &Store {
        self.app.store()
    }

    /// The demo event (created on first use): floor English as plain RTP, two languages.
    pub async fn ensure_demo(&self) -> Result<EventView, ServerError> {
        Ok(self.app.ensure_demo().await?)
    }

    /// Where an event's BBB floor is, as it changes; None when the event has no BBB floor running.
    pub fn watch_floor(&self, event: &EventId) -> Option<watch::Receiver<FloorStatus>> {
        self.app.floors.watch(event)
    }

    /// What keeps the node from serving (what `/healthz` reports); empty when healthy.
    pub async fn health(&self) -> Vec<String> {
        self.app.health().await
    }

    /// Resolves with a sentence once a media shard thread has stopped (checked every second from
    /// the join handles): the binary exits then, so that systemd starts a whole new process.
    pub fn shard_stopped(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let app = self.app.clone();
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let problems = app.media().health();
                let stopped =
                    problems.iter().find(|p| matches!(p, crate::net::health::ShardProblem::Stopped(_)));
                if let Some(problem) = stopped {
                    return problem.to_string();
                }
            }
        }
    }

    /// A test hook: inject a fault into a media shard (never reachable from the network).
    #[doc(hidden)]
    pub fn inject_fault(&self, shard: usize, fault: crate::net::Fault) -> Result<(), crate::net::NetError> {
        self.app.media().inject_fault(shard, fault)
    }

    /// The media shards' ICE candidate addresses (shard k's socket).
    pub fn media_addresses(&self) -> Vec<SocketAddr> {
        self.app.media().addresses().to_vec()
    }

    /// The shard a live session is on.
    pub fn shard_of(&self, session: &crate::ids::SessionId) -> Option<usize> {
        self.app.media().shard_of(session)
    }

    /// Wait until the HTTP server ends.
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}
