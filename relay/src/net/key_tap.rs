//! DTLS-SRTP keys for Tolk's own fan-out. str0m runs each peer's ICE and DTLS, but it keeps the
//! SRTP keys to itself and its send path costs far more per packet than SRTP and the kernel
//! (docs/architecture.md, "Fan-out without the engine's send path"). This module wraps str0m's
//! crypto provider (its public, pluggable crypto interface): every DTLS instance built while a
//! tap is armed on this thread reports the keying material it exports into that tap, and the
//! shard then protects its listeners' packets itself ([`crate::media::srtp`]).
//!
//! It also builds the DTLS instances itself, from one dimpl configuration made once: str0m's
//! provider builds a fresh configuration per peer, and building one runs dimpl's self-test of
//! every key-exchange group (an X25519, a P-256 and a P-384 agreement), which was the largest
//! single cost of a join on the shard's thread.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion};
use str0m::crypto::dtls::{ProtocolVersion, SrtpProfile};
use str0m::crypto::{CryptoError, CryptoProvider};

use crate::media::srtp::{Profile, SrtpError, SrtpSender};

/// What one peer's DTLS exported: enough to build the sending SRTP context.
#[derive(Clone)]
pub struct ExportedKeys {
    pub profile: Profile,
    pub material: Vec<u8>,
    /// Whether we were the DTLS client (then we send with the client's keys).
    pub client: bool,
}

impl std::fmt::Debug for ExportedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedKeys").field("profile", &self.profile).field("client", &self.client).finish()
    }
}

impl ExportedKeys {
    pub fn sender(&self) -> Result<SrtpSender, SrtpError> {
        SrtpSender::from_keying_material(self.profile, &self.material, self.client)
    }
}

/// Where one peer's keys land, once its handshake is done.
pub type KeyTap = Arc<OnceLock<ExportedKeys>>;

thread_local! {
    static ARMED: RefCell<Option<KeyTap>> = const { RefCell::new(None) };
}

/// Run `build` (which creates one `Rtc`) with a fresh tap armed; returns what it built and the
/// tap its DTLS will fill. The `Rtc` must be built with [`provider`].
pub fn with_tap<T>(build: impl FnOnce() -> T) -> (T, KeyTap) {
    let tap = KeyTap::default();
    ARMED.with(|armed| *armed.borrow_mut() = Some(tap.clone()));
    let built = build();
    ARMED.with(|armed| armed.borrow_mut().take());
    (built, tap)
}

/// str0m's default crypto provider with the tapping DTLS factory in place of its own.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    static DTLS: OnceLock<TappingDtls> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut base = str0m::crypto::from_feature_flags();
            let dtls: &'static TappingDtls = DTLS.get_or_init(|| TappingDtls { inner: base.dtls_provider });
            base.dtls_provider = dtls;
            Arc::new(base)
        })
        .clone()
}

/// The relay's DTLS certificate, made once: str0m would otherwise generate a key pair and sign
/// a certificate for every peer, on the shard thread, at every join. The handshake's keys are
/// ephemeral (ECDHE) whatever the certificate, so sharing it costs no secrecy.
pub fn certificate() -> Option<DtlsCert> {
    static CERT: OnceLock<Option<DtlsCert>> = OnceLock::new();
    CERT.get_or_init(|| provider().dtls_provider.generate_certificate()).clone()
}

#[derive(Debug)]
struct TappingDtls {
    inner: &'static dyn DtlsProvider,
}

impl DtlsProvider for TappingDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.inner.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        if self.inner.is_test() {
            return self.inner.new_dtls(cert, now, dtls_version, mtu); // seeded, for str0m's tests
        }
        let config = dimpl_config(mtu)?;
        let certificate = dimpl::DtlsCertificate {
            certificate: cert.certificate.clone(),
            private_key: cert.private_key.clone(),
        };
        let dtls = match dtls_version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, certificate, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, certificate, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, certificate, now),
            #[allow(unreachable_patterns)]
            other => return Err(CryptoError::Other(format!("DTLS version {other} is not supported"))),
        };
        let tap = ARMED.with(|armed| armed.borrow_mut().take());
        Ok(Box::new(TappedInstance { inner: dtls, tap }))
    }

    fn is_test(&self) -> bool {
        self.inner.is_test()
    }
}

/// The shared dimpl configuration for `mtu` (str0m passes the same one for every peer).
fn dimpl_config(mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
    static CONFIGS: Mutex<Vec<(Option<usize>, Arc<dimpl::Config>)>> = Mutex::new(Vec::new());
    let mut configs = CONFIGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, config)) = configs.iter().find(|(m, _)| *m == mtu) {
        return Ok(config.clone());
    }
    // ICE has already proven the address reachable, so DTLS cookies would add a round trip for
    // nothing (as str0m's own provider also decides).
    let mut builder = dimpl::Config::builder().use_server_cookie(false);
    if let Some(mtu) = mtu {
        builder = builder.mtu(mtu);
    }
    let config =
        Arc::new(builder.build().map_err(|e| CryptoError::Other(format!("DTLS configuration: {e}")))?);
    configs.push((mtu, config.clone()));
    Ok(config)
}

/// One peer's DTLS, reporting its exported keys into its tap if it has one.
struct TappedInstance {
    inner: dimpl::Dtls,
    tap: Option<KeyTap>,
}

impl std::fmt::Debug for TappedInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TappedInstance").field("tapped", &self.tap.is_some()).finish()
    }
}

impl DtlsInstance for TappedInstance {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let output = self.inner.poll_output(buf);
        if let Some(tap) = &self.tap
            && let DtlsOutput::KeyingMaterial(material, profile) = &output
        {
            let profile = match profile {
                SrtpProfile::AES128_CM_SHA1_80 => Some(Profile::Aes128CmSha1_80),
                SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
                SrtpProfile::AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
                #[allow(unreachable_patterns)]
                _ => None,
            };
            if let Some(profile) = profile {
                let _ = tap.set(ExportedKeys {
                    profile,
                    material: material.to_vec(),
                    client: self.inner.is_active(),
                });
            }
        }
        output
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}
