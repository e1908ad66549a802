//! A running Tolk: the HTTP listener bound, the app started, and a way to stop both. Used by the
//! `tolk` binary and, in-process, by the integration tests.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::info;

use crate::app::{App, AppError};
use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    App(#[from] AppError),
}

pub struct Server {
    pub app: Arc<App>,
    /// The bound HTTP address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(mut settings: Settings) -> Result<Self, ServerError> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Listen { addr: settings.listen, source })?;
        let addr =
            listener.local_addr().map_err(|source| ServerError::Listen { addr: settings.listen, source })?;
        if settings.public_url_from_listen {
            settings.public_url = format!("http://{addr}");
        }
        let app = App::start(settings).await?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = crate::http::router(app.clone());
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server stopped with an error");
            }
        });
        info!(%addr, public_url = %app.settings.public_url, "Tolk is listening");
        Ok(Self { app, addr, shutdown: Some(shutdown), task })
    }

    /// Stop accepting requests and wait for the HTTP side to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Wait until the HTTP server ends.
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}
