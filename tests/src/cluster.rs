//! A cluster of Tolk nodes as separate processes (`tolk serve`), each in its own network
//! namespace on a bridge of the test's own (10.77.N.0/24), with a real Redis and a throwaway
//! PostgreSQL on the bridge's address. Killing a node is SIGKILL (a crash: no goodbye in Redis).
//! Needs root (network namespaces) and the built `tolk` binary (`cargo build --bin tolk`;
//! `./scripts/test` builds it).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::redis::TestRedis;
use crate::relay::ADMIN;

/// The secret the test clusters' nodes share.
pub const SECRET: &str = "secret-of-the-test-cluster";

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program).args(args).output().with_context(|| format!("{program} {args:?}"))?;
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

static NEXT_NET: AtomicU8 = AtomicU8::new(0);

/// A bridge and the namespaces on it.
pub struct TestNet {
    /// The third octet of 10.77.N.0/24.
    pub n: u8,
    bridge: String,
    namespaces: Vec<String>,
}

impl TestNet {
    /// A new bridge with 10.77.N.1/24 (the test's side: Redis, PostgreSQL, the clients).
    pub fn new() -> anyhow::Result<Self> {
        let n = 20
            + (std::process::id() as u8)
                .wrapping_mul(7)
                .wrapping_add(NEXT_NET.fetch_add(1, Ordering::Relaxed))
                % 200;
        let bridge = format!("tolkbr{n}");
        let _ = run("ip", &["link", "del", &bridge]); // left over by a killed run
        run("ip", &["link", "add", &bridge, "type", "bridge"])
            .context("network namespaces need root and iproute2 (the cluster tests run as root)")?;
        run("ip", &["addr", "add", &format!("10.77.{n}.1/24"), "dev", &bridge])?;
        run("ip", &["link", "set", &bridge, "up"])?;
        Ok(Self { n, bridge, namespaces: Vec::new() })
    }

    /// The test's own address on the bridge.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.n, 1)
    }

    /// A namespace with one interface on the bridge; returns its name and address.
    pub fn add_namespace(&mut self, name: &str) -> anyhow::Result<(String, Ipv4Addr)> {
        let index = self.namespaces.len() as u8 + 10;
        let ns = format!("tolk{}-{name}", self.n);
        let veth = format!("tv{}-{index}", self.n);
        let _ = run("ip", &["netns", "del", &ns]);
        run("ip", &["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        run("ip", &["link", "set", &veth, "master", &self.bridge, "up"])?;
        let ip = Ipv4Addr::new(10, 77, self.n, index);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        inside(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        inside(&["route", "add", "default", "via", &self.host_ip().to_string()])?;
        Ok((ns, ip))
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = run("ip", &["netns", "del", ns]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

/// A throwaway PostgreSQL (Debian's package) listening on one address.
pub struct TestPostgres {
    bin: PathBuf,
    dir: tempfile_dir::Dir,
    /// `postgres://tolk@IP:PORT/postgres`.
    pub url: String,
}

mod tempfile_dir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl TestPostgres {
    /// Start one on `ip` (trusting the bridge's addresses) and wait until it answers.
    pub fn start(ip: Ipv4Addr) -> anyhow::Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (./scripts/test installs it)")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .context("no PostgreSQL bin directory")?;
        let dir = std::env::temp_dir().join(format!("tolk-cluster-pg-{}", tolk_relay::ids::random_hex(6)));
        std::fs::create_dir_all(&dir)?;
        let dir = tempfile_dir::Dir(dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data = dir.0.join("data");
        as_postgres(&dir.0)?;
        pg(&bin, "initdb", &["-D", &data.to_string_lossy(), "-A", "trust", "-U", "tolk"])?;
        let hba = data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba)?;
        rules.push_str("\nhost all all 10.77.0.0/16 trust\n");
        std::fs::write(&hba, rules)?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses={ip} -c max_connections=300 -c fsync=off",
            dir.0.display()
        );
        let log = dir.0.join("log");
        pg(
            &bin,
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "-l", &log.to_string_lossy(), "-w", "-o", &options, "start"],
        )?;
        Ok(Self { bin, url: format!("postgres://tolk@{ip}:{port}/postgres"), dir })
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let data = self.dir.0.join("data");
        let _ = pg(&self.bin, "pg_ctl", &["-D", &data.to_string_lossy(), "-m", "immediate", "-w", "stop"]);
    }
}

/// As root, PostgreSQL runs as the `postgres` user: it must own its directory.
fn as_postgres(dir: &std::path::Path) -> anyhow::Result<()> {
    if nix_is_root() {
        run("chown", &["postgres", &dir.to_string_lossy()])?;
    }
    Ok(())
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"))
}

fn pg(bin: &std::path::Path, tool: &str, args: &[&str]) -> anyhow::Result<()> {
    let program = bin.join(tool);
    let program = program.to_string_lossy();
    if nix_is_root() {
        let mut all = vec!["-u", "postgres", "--", &program];
        all.extend_from_slice(args);
        let out = Command::new("runuser").args(&all).current_dir("/").output()?;
        if !out.status.success() {
            bail!("{tool}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    } else {
        run(&program, args)
    }
}

/// One node: a `tolk serve` process in its namespace.
pub struct ClusterNode {
    pub name: String,
    pub ns: String,
    pub ip: Ipv4Addr,
    /// `http://IP:8080`.
    pub base: String,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl ClusterNode {
    /// `tolk serve` in a new namespace on `net`: HTTP and metrics on the namespace's address,
    /// media on UDP 40000, its candidates that address, SQLite in a new data directory; `extra`
    /// adds to or replaces that environment (`("TOLK_PUBLIC_IP", "")`: the relay's defaults).
    pub fn start_in(net: &mut TestNet, name: &str, extra: Vec<(&str, String)>) -> anyhow::Result<Self> {
        let (ns, ip) = net.add_namespace(name)?;
        let data_dir =
            std::env::temp_dir().join(format!("tolk-node-{}-{name}", tolk_relay::ids::random_hex(4)));
        std::fs::create_dir_all(&data_dir)?;
        let mut env: Vec<(String, String)> = vec![
            ("TOLK_LISTEN", format!("{ip}:8080")),
            ("TOLK_PUBLIC_URL", format!("http://{ip}:8080")),
            ("TOLK_PUBLIC_IP", ip.to_string()),
            ("TOLK_MEDIA_PORT", "40000".into()),
            ("TOLK_MEDIA_SHARDS", "1".into()),
            ("TOLK_DATA_DIR", data_dir.to_string_lossy().into_owned()),
            ("TOLK_ADMIN_TOKEN", ADMIN.into()),
            ("TOLK_METRICS_LISTEN", format!("{ip}:9464")),
            ("TOLK_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_owned(), v));
        }
        let mut node = Self {
            name: name.to_owned(),
            ns,
            ip,
            base: format!("http://{ip}:8080"),
            data_dir,
            env,
            child: None,
        };
        node.spawn()?;
        Ok(node)
    }

    /// Wait until the node answers `/healthz` (30 s at most).
    pub async fn until_healthy(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        let who = format!("node {}", self.name);
        crate::process::until_healthy(http, &self.url("/healthz"), &self.data_dir.join("tolk.log"), &who)
            .await
    }

    /// Create an event on this node (English floor, WHIP, `languages`, a window around now) with
    /// the admin token; returns its id and floor token.
    pub async fn create_event(
        &self,
        http: &reqwest::Client,
        languages: &[&str],
        expected_listeners: u32,
    ) -> anyhow::Result<(String, String)> {
        let now = chrono::Utc::now();
        let created: serde_json::Value = http
            .post(self.url("/api/v1/events"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({
                "title": "Cluster plenary", "floor_language": "en", "languages": languages,
                "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
                "expected_listeners": expected_listeners, "floor": {"kind": "whip"},
            }))
            .send()
            .await?
            .json()
            .await?;
        let id = created["id"].as_str().with_context(|| format!("the event was not created: {created}"))?;
        let token =
            created["floor"]["token"].as_str().with_context(|| format!("no floor token: {created}"))?;
        Ok((id.to_owned(), token.to_owned()))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: the node dies as in a crash.
    pub fn kill(&mut self) {
        crate::process::kill(&mut self.child);
    }

    /// Whether the process is running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().is_ok_and(|s| s.is_none()))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.data_dir.join("tolk.log"))?;
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns, &tolk_binary()?.to_string_lossy(), "serve"]);
        // The log goes to stdout, panics to stderr: both into the file.
        command.envs(self.env.iter().map(|(k, v)| (k, v))).stdout(log.try_clone()?).stderr(log);
        self.child = Some(command.spawn().context("starting tolk serve in its namespace")?);
        Ok(())
    }

    /// The last lines of the node's log (for a failing test's message).
    pub fn log_tail(&self, lines: usize) -> String {
        crate::process::log_tail(&self.data_dir.join("tolk.log"), lines)
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The `tolk` binary next to the test binaries.
pub fn tolk_binary() -> anyhow::Result<PathBuf> {
    if let Some(chosen) = CHOSEN_BINARY.get() {
        return Ok(chosen.clone());
    }
    let exe = std::env::current_exe()?;
    // target/debug/deps/<test> → target/debug/tolk
    let binary = exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join("tolk"));
    match binary {
        Some(path) if path.exists() => Ok(path),
        _ => bail!("the tolk binary is not built: run `cargo build --bin tolk` (./scripts/test does)"),
    }
}

/// Redis, PostgreSQL and nodes on one bridge.
pub struct TestCluster {
    pub nodes: Vec<ClusterNode>,
    pub redis: TestRedis,
    pub postgres: TestPostgres,
    /// A client for the test's side (no redirect followed unless asked).
    pub http: reqwest::Client,
    pub net: TestNet,
}

impl TestCluster {
    /// Nodes named `names`, each with `extra(name)` environment on top of the cluster's own;
    /// returns once every node answers `/healthz` and Redis lists them all.
    pub async fn start(
        names: &[&str],
        extra: impl Fn(&str) -> Vec<(&'static str, String)>,
    ) -> anyhow::Result<Self> {
        tolk_relay::bbb::install_default_crypto();
        let mut net = TestNet::new()?;
        let host = net.host_ip();
        let redis = TestRedis::start_on(host).await?;
        let postgres = TestPostgres::start(host)?;
        let mut nodes = Vec::new();
        for name in names {
            let mut env: Vec<(&'static str, String)> = vec![
                ("TOLK_DATABASE_URL", postgres.url.clone()),
                ("TOLK_REDIS_URL", redis.url()),
                ("TOLK_CLUSTER_SECRET", SECRET.into()),
                ("TOLK_NODE_ID", (*name).to_owned()),
            ];
            env.extend(extra(name));
            nodes.push(ClusterNode::start_in(&mut net, name, env)?);
        }
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let cluster = Self { nodes, redis, postgres, http, net };
        for node in &cluster.nodes {
            cluster.until_healthy(node).await?;
        }
        cluster.until_listed(names.len()).await?;
        Ok(cluster)
    }

    async fn until_healthy(&self, node: &ClusterNode) -> anyhow::Result<()> {
        node.until_healthy(&self.http).await
    }

    /// Wait until Redis lists `n` nodes, and a heartbeat more (every node has read the others).
    pub async fn until_listed(&self, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.redis.keys("tolk:node:*").await?.len() != n {
            anyhow::ensure!(
                Instant::now() < deadline,
                "Redis lists {:?}",
                self.redis.keys("tolk:node:*").await?
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        Ok(())
    }

    pub fn node(&self, name: &str) -> anyhow::Result<&ClusterNode> {
        self.nodes.iter().find(|n| n.name == name).with_context(|| format!("no node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> anyhow::Result<&mut ClusterNode> {
        self.nodes.iter_mut().find(|n| n.name == name).with_context(|| format!("no node {name}"))
    }

    /// The node whose URL `url` is on.
    pub fn node_of(&self, url: &str) -> Option<&str> {
        self.nodes.iter().find(|n| url.starts_with(&n.base)).map(|n| n.name.as_str())
    }

    /// Who holds the origin lease of `event`.
    pub async fn origin_of(&self, event: &str) -> anyhow::Result<Option<String>> {
        self.redis.get(&format!("tolk:origin:{event}")).await
    }

    /// Create an event through `node` (English floor, WHIP, `languages`, a window around now)
    /// with the admin token; returns its id and floor token.
    pub async fn create_event(
        &self,
        node: &str,
        languages: &[&str],
        expected_listeners: u32,
    ) -> anyhow::Result<(String, String)> {
        self.node(node)?.create_event(&self.http, languages, expected_listeners).await
    }

    /// The value of a metric on a node (its metrics address).
    pub async fn metric(&self, node: &str, name: &str) -> anyhow::Result<Option<f64>> {
        let node = self.node(node)?;
        let text = self.http.get(format!("http://{}:9464/metrics", node.ip)).send().await?.text().await?;
        Ok(text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok()))
    }
}

// ---------------------------------------------------------------------------------------------
// For tolk-loadtest's `cluster` run (loadtest/src/cluster.rs): a binary given on its command
// line, the nodes' pids (their CPU), and the addresses the test's side may have on its bridge.

static CHOSEN_BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Run the nodes from `binary` rather than the `tolk` beside the running executable (a tool
/// such as `tolk-loadtest cluster --relay-bin target/release/tolk`). Once per process; false if
/// another binary was chosen already.
pub fn use_tolk_binary(binary: PathBuf) -> bool {
    CHOSEN_BINARY.get_or_init(|| binary.clone()) == &binary
}

impl ClusterNode {
    /// The node's process id (`ip netns exec` execs `tolk serve`: the same process), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its Prometheus metrics URL.
    pub fn metrics_url(&self) -> String {
        format!("http://{}:9464/metrics", self.ip)
    }
}

impl TestNet {
    /// Every address the test's side can have on a bridge of [`TestNet::new`] (10.77.N.1 for
    /// each N it picks from): for `TOLK_TRUSTED_PROXIES`, which the nodes are given before the
    /// bridge is chosen, so that they believe a load generator's X-Forwarded-For.
    pub fn possible_host_ips() -> Vec<Ipv4Addr> {
        (20..220).map(|n| Ipv4Addr::new(10, 77, n, 1)).collect()
    }
}
