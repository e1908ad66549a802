//! A throwaway Redis for cluster tests: Debian's `redis-server` on a free loopback port, no
//! persistence, killed when dropped. Stop and start it again on the same port to test an outage.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use redis::AsyncCommands;

pub struct TestRedis {
    pub ip: std::net::Ipv4Addr,
    pub port: u16,
    child: Option<Child>,
}

impl TestRedis {
    /// A Redis on a free loopback port, answering PING.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST).await
    }

    /// A Redis on a free port of `ip`, answering PING.
    pub async fn start_on(ip: std::net::Ipv4Addr) -> anyhow::Result<Self> {
        let port = TcpListener::bind((ip, 0))?.local_addr()?.port();
        let mut redis = Self { ip, port, child: None };
        redis.resume().await?;
        Ok(redis)
    }

    fn log_path(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("tolk-redis-{}.log", self.port))
    }

    /// `redis://{ip}:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}/0", self.ip, self.port)
    }

    /// Kill the server (an outage): nothing answers on its port until [`TestRedis::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port (empty: its state is gone, as after a crash
    /// without persistence), and wait until it answers.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", &self.ip.to_string(), "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .args(["--logfile", &self.log_path().to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server (Debian's redis-server package; ./scripts/test installs it)")?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect((self.ip, self.port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                stream.write_all(b"PING\r\n").await?;
                let mut buf = [0u8; 16];
                if let Ok(n) = stream.read(&mut buf).await
                    && buf[..n].starts_with(b"+PONG")
                {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                bail!("redis-server on {}:{} exited ({status}): {log}", self.ip, self.port);
            }
            if started.elapsed() > Duration::from_secs(10) {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                bail!("redis-server did not answer on {}:{} within 10 s: {log}", self.ip, self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The keys matching `pattern` (`tolk:node:*`), sorted.
    pub async fn keys(&self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let mut keys: Vec<String> = self.connection().await?.keys(pattern).await?;
        keys.sort();
        Ok(keys)
    }

    /// The value at `key`.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self.connection().await?.get(key).await?)
    }

    async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        Ok(tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await??)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
