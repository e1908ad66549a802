//! A throwaway Redis for cluster tests: Debian's `redis-server` on a free loopback port, no
//! persistence, killed when dropped. Stop and start it again on the same port to test an outage.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct TestRedis {
    pub port: u16,
    child: Option<Child>,
}

impl TestRedis {
    /// A Redis on a free port, answering PING.
    pub async fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut redis = Self { port, child: None };
        redis.resume().await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
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
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server (Debian's redis-server package; ./scripts/test installs it)")?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                stream.write_all(b"PING\r\n").await?;
                let mut buf = [0u8; 16];
                if let Ok(n) = stream.read(&mut buf).await
                    && buf[..n].starts_with(b"+PONG")
                {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("redis-server did not answer on port {} within 10 s", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The keys matching `pattern` (`tolk:node:*`), sorted.
    pub async fn keys(&self, pattern: &str) -> anyhow::Result<Vec<String>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let command = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
        stream.write_all(command.as_bytes()).await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        // A RESP array of bulk strings: read until every element announced has arrived.
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            let Some(count) =
                text.strip_prefix('*').and_then(|t| t.split("\r\n").next()?.parse::<usize>().ok())
            else {
                continue;
            };
            let lines: Vec<&str> = text.split("\r\n").collect();
            if lines.len() > 2 * count + 1 {
                let mut keys: Vec<String> =
                    lines[2..=2 * count].iter().step_by(2).map(|s| s.to_string()).collect();
                keys.sort();
                return Ok(keys);
            }
        }
        bail!("Redis closed the connection before answering KEYS")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
