//! nginx in the foreground with a BBB host's shape, for the tests that run Tolk behind it: a
//! server block that includes `/etc/bigbluebutton/nginx/*.nginx`-style snippets — the shipped
//! `deploy/bbb/tolk.nginx`, and optionally BBB's own locations sent to the BBB stand-in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// nginx in the foreground with BBB's shape: a server block that includes the snippet.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    /// nginx with the shipped `tolk.nginx` snippet sending `/tolk/` to 127.0.0.1:`upstream_port`;
    /// with `bbb_port`, BBB's own locations (`/bigbluebutton/`, `/html5client/`) go to the BBB
    /// stand-in there, so the BBB client, its plugin and Tolk share one origin as on a BBB host.
    pub async fn start(upstream_port: u16, bbb_port: Option<u16>) -> anyhow::Result<Self> {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("nginx is not installed (scripts/test installs the Debian package)")?;
        let dir = std::env::temp_dir().join(format!("tolk-nginx-{}", tolk_relay::ids::random_hex(6)));
        std::fs::create_dir_all(dir.join("bigbluebutton"))?;
        let snippet = std::fs::read_to_string(repo().join("deploy/bbb/tolk.nginx"))?
            .replace("127.0.0.1:8090", &format!("127.0.0.1:{upstream_port}"));
        std::fs::write(dir.join("bigbluebutton/tolk.nginx"), snippet)?;
        if let Some(bbb) = bbb_port {
            let proxy = |path: &str| {
                format!(
                    "location ^~ {path} {{\n    proxy_pass http://127.0.0.1:{bbb};\n    proxy_http_version 1.1;\n    \
                     proxy_set_header Host $host;\n    proxy_buffering off;\n}}\n"
                )
            };
            std::fs::write(
                dir.join("bigbluebutton/bbb.nginx"),
                [proxy("/bigbluebutton/"), proxy("/html5client/")].concat(),
            )?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                 events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
                 scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    \
                 location ~ \\.(js|css|svg)$ {{ return 418; }}\n    \
                 include {d}/bigbluebutton/*.nginx;\n  }}\n}}\n"
            ),
        )?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let nginx = Self { child, dir, port };
        // Ready when it accepts connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if std::time::Instant::now() > deadline {
                bail!("nginx did not listen: {}", std::fs::read_to_string(nginx.dir.join("error.log"))?);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(nginx)
    }

    /// The port nginx listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
