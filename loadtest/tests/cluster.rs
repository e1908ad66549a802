//! The `cluster` profile end to end, small: three `tolk serve` nodes in their own network
//! namespaces (real Redis, PostgreSQL, WebRTC), 60 listeners joining through node A for 10 s.
//! Listeners must land on all three nodes, lose under 1 % of the packets, and the origin must
//! count one cascade per edge serving listeners. Needs root and the built `tolk` binary
//! (`cargo build --bin tolk`); the cluster is torn down when the test ends, failed or not.

use std::path::Path;

use tolk_loadtest::cluster::{ClusterOptions, cluster};
use tolk_loadtest::profile::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_profile_spreads_listeners_over_three_nodes_with_one_cascade_per_edge()
-> anyhow::Result<()> {
    let profile = Profile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/cluster.toml"))?;
    let dir = std::env::temp_dir().join(format!("tolk-loadtest-cluster-{}", tolk_relay::ids::random_hex(4)));
    let options = ClusterOptions {
        relay_bin: None,
        listeners: Some(60),
        duration_s: Some(10.0),
        workers: 1,
        report_dir: Some(dir.clone()),
        progress: true,
        cost_step_s: 1.0,
    };
    let report = cluster(&profile, &options).await?;
    println!("{}", tolk_loadtest::report::markdown_run(&report.run));
    println!("{}", tolk_loadtest::cluster::markdown(&report));
    let _ = std::fs::remove_dir_all(&dir);

    let nodes = &report.run.nodes;
    assert_eq!(nodes.len(), 3, "nodes reported: {nodes:?}");
    for node in nodes {
        assert!(node.listeners > 0, "node {} served no listener: {nodes:?}", node.name);
    }
    assert_eq!(report.origin.as_deref(), Some("a"), "the floor publishes through A, its origin");
    assert!(report.run.loss.expected > 10_000, "too few packets for a run: {:?}", report.run.loss);
    assert!(report.run.loss.percent < 1.0, "lost {:.2} % of the packets", report.run.loss.percent);
    assert_eq!(report.edges_serving.len(), 2, "edges serving: {:?}", report.edges_serving);
    assert!(
        report.one_cascade_per_edge,
        "cascades out of the origin: {:?} for edges {:?}",
        report.cascades_out, report.edges_serving
    );
    let steps: Vec<f64> = report.cascade_cpu.iter().map(|s| s.cascades_out).collect();
    assert_eq!(steps, [0.0, 1.0, 2.0], "cascades with 0, 1, 2 edges subscribed");
    Ok(())
}
