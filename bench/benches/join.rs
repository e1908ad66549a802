//! Join: what accepting one listener's offer costs the shard before any packet flows — the str0m
//! engine with its DTLS instance, the answer, the first poll. Tolk's provider (one DTLS
//! certificate per process, one dimpl configuration per process: `net/key_tap.rs`) against
//! str0m's stock provider in the same run, with Tolk's one certificate and with str0m's default
//! of a new certificate per peer. The stock provider builds a dimpl configuration per peer and
//! with it runs dimpl's self-test of every key-exchange group (X25519, P-256, P-384 agreements).
//! The DTLS handshake itself (one ECDHE and one signature per join) comes later and is the same
//! for both.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Output, Rtc};

/// A listener's offer, as the load generator's str0m client makes it.
fn listener_offer() -> anyhow::Result<String> {
    let mut client =
        Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).build(Instant::now());
    client.add_local_candidate(Candidate::host("127.0.0.1:40000".parse()?, "udp")?);
    let mut change = client.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _) = change.apply().ok_or_else(|| anyhow::anyhow!("no offer"))?;
    Ok(offer.to_sdp_string())
}

/// The same steps as `net::peer::accept`, on str0m's stock provider; with Tolk's one certificate
/// (`shared_cert`) or a new one per peer (str0m's default).
fn accept_with_stock_provider(candidate: SocketAddr, offer: &str, shared_cert: bool) -> anyhow::Result<Rtc> {
    let offer = str0m::change::SdpOffer::from_sdp_string(offer)?;
    let mut builder = Rtc::builder();
    if shared_cert && let Some(cert) = tolk_relay::net::key_tap::certificate() {
        builder = builder.set_dtls_cert(cert);
    }
    let mut rtc = builder
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .set_stats_interval(None)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(candidate, "udp")?);
    rtc.sdp_api().accept_offer(offer)?;
    while let Ok(output) = rtc.poll_output() {
        if matches!(output, Output::Timeout(_)) {
            break;
        }
    }
    Ok(rtc)
}

fn main() -> anyhow::Result<()> {
    tolk_relay::bbb::install_default_crypto();
    let offer = listener_offer()?;
    let candidate: SocketAddr = "127.0.0.1:40001".parse()?;
    // Both paths must work before they are timed.
    tolk_relay::net::peer::accept(Instant::now(), &[candidate], &offer)?;
    accept_with_stock_provider(candidate, &offer, true)?;

    let mut c = Criterion::default().configure_from_args().measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("join");
    group.bench_function("tolk provider", |b| {
        b.iter(|| black_box(tolk_relay::net::peer::accept(Instant::now(), &[candidate], &offer).is_ok()))
    });
    group.bench_function("stock provider, one certificate", |b| {
        b.iter(|| black_box(accept_with_stock_provider(candidate, &offer, true).is_ok()))
    });
    group.bench_function("stock provider, a certificate per peer", |b| {
        b.iter(|| black_box(accept_with_stock_provider(candidate, &offer, false).is_ok()))
    });
    group.finish();
    c.final_summary();
    Ok(())
}
