//! SRTP for the fan-out (RFC 3711, RFC 7714): Tolk's own protect path for the packets it sends
//! to listeners, keyed from the DTLS-SRTP keying material (RFC 5764) the WebRTC engine exported.
//!
//! Only the sending direction of RTP lives here. Receiving, and all of SRTCP, stays with the
//! WebRTC engine; the two never share an SSRC's packet index, so they never reuse a key stream.
//! Sans-IO: bytes in, bytes out.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

/// The DTLS-SRTP protection profiles (RFC 5764, RFC 7714) Tolk can send with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Aes128CmSha1_80,
    AeadAes128Gcm,
    AeadAes256Gcm,
}

impl Profile {
    /// Master key and master salt lengths.
    const fn lengths(self) -> (usize, usize) {
        match self {
            Profile::Aes128CmSha1_80 => (16, 14),
            Profile::AeadAes128Gcm => (16, 12),
            Profile::AeadAes256Gcm => (32, 12),
        }
    }

    /// Bytes of keying material DTLS must export for this profile (both directions).
    pub const fn keying_material_len(self) -> usize {
        let (key, salt) = self.lengths();
        2 * (key + salt)
    }

    /// Bytes SRTP appends to each packet (authentication tag).
    pub const fn overhead(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 => 10,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => 16,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SrtpError {
    #[error("DTLS exported {got} bytes of keying material; {profile:?} needs {need}")]
    KeyingMaterial { profile: Profile, got: usize, need: usize },
    #[error("the crypto library refused the SRTP key")]
    Key,
    #[error("an RTP header of {0} bytes does not fit the packet")]
    Header(usize),
    #[error("encryption failed")]
    Encrypt,
}

/// Derived session keys for one direction, ready to protect RTP.
pub struct SrtpSender {
    cipher: Cipher,
}

enum Cipher {
    Cm { key: EncryptingKey, salt: [u8; 14], auth: hmac::Key },
    Gcm { key: LessSafeKey, salt: [u8; 12] },
}

impl std::fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let profile = match self.cipher {
            Cipher::Cm { .. } => "AES_CM_128_HMAC_SHA1_80",
            Cipher::Gcm { .. } => "AEAD_AES_GCM",
        };
        f.debug_struct("SrtpSender").field("profile", &profile).finish_non_exhaustive()
    }
}

/// RFC 3711 §4.3 key derivation labels (key derivation rate 0).
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;

impl SrtpSender {
    /// The sending context from DTLS-SRTP keying material: the client's keys when we were the
    /// DTLS client, the server's when we were the server (RFC 5764 §4.2).
    pub fn from_keying_material(
        profile: Profile,
        material: &[u8],
        dtls_client: bool,
    ) -> Result<Self, SrtpError> {
        let (key_len, salt_len) = profile.lengths();
        let need = profile.keying_material_len();
        if material.len() != need {
            return Err(SrtpError::KeyingMaterial { profile, got: material.len(), need });
        }
        let (client_key, rest) = material.split_at(key_len);
        let (server_key, rest) = rest.split_at(key_len);
        let (client_salt, server_salt) = rest.split_at(salt_len);
        let (key, salt) = if dtls_client { (client_key, client_salt) } else { (server_key, server_salt) };
        Self::new(profile, key, salt)
    }

    /// The sending context from a master key and salt (RFC 3711 §4.3 derivation).
    pub fn new(profile: Profile, master_key: &[u8], master_salt: &[u8]) -> Result<Self, SrtpError> {
        let (key_len, salt_len) = profile.lengths();
        if master_key.len() != key_len || master_salt.len() != salt_len {
            return Err(SrtpError::KeyingMaterial {
                profile,
                got: master_key.len() + master_salt.len(),
                need: key_len + salt_len,
            });
        }
        let cipher = match profile {
            Profile::Aes128CmSha1_80 => {
                let mut key = [0u8; 16];
                let mut salt = [0u8; 14];
                let mut auth = [0u8; 20];
                derive(master_key, master_salt, LABEL_RTP_KEY, &mut key)?;
                derive(master_key, master_salt, LABEL_RTP_SALT, &mut salt)?;
                derive(master_key, master_salt, LABEL_RTP_AUTH, &mut auth)?;
                let key = UnboundCipherKey::new(&AES_128, &key).map_err(|_| SrtpError::Key)?;
                Cipher::Cm {
                    key: EncryptingKey::ctr(key).map_err(|_| SrtpError::Key)?,
                    salt,
                    auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &auth),
                }
            }
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => {
                let mut key = vec![0u8; key_len];
                let mut salt = [0u8; 12];
                derive(master_key, master_salt, LABEL_RTP_KEY, &mut key)?;
                derive(master_key, master_salt, LABEL_RTP_SALT, &mut salt)?;
                let algorithm = if profile == Profile::AeadAes128Gcm { &AES_128_GCM } else { &AES_256_GCM };
                let key = UnboundKey::new(algorithm, &key).map_err(|_| SrtpError::Key)?;
                Cipher::Gcm { key: LessSafeKey::new(key), salt }
            }
        };
        Ok(Self { cipher })
    }

    /// Protect one RTP packet in place: `packet` holds the header (`header_len` bytes, CSRCs and
    /// extension included) and the payload; the payload is encrypted and the tag appended.
    /// `index` is the packet's 48-bit SRTP index, ROC · 2¹⁶ + sequence number.
    pub fn protect(
        &self,
        packet: &mut Vec<u8>,
        header_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<(), SrtpError> {
        if header_len < 12 || header_len > packet.len() {
            return Err(SrtpError::Header(header_len));
        }
        match &self.cipher {
            Cipher::Cm { key, salt, auth } => {
                // IV = salt·2¹⁶ ⊕ SSRC·2⁶⁴ ⊕ index·2¹⁶ (RFC 3711 §4.1.1).
                let mut iv = [0u8; 16];
                iv[..14].copy_from_slice(salt);
                for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
                    *b ^= s;
                }
                for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
                    *b ^= s;
                }
                key.less_safe_encrypt(
                    &mut packet[header_len..],
                    EncryptionContext::Iv128(FixedLength::from(iv)),
                )
                .map_err(|_| SrtpError::Encrypt)?;
                // Tag: HMAC-SHA1 over header, encrypted payload and ROC, first 80 bits (§4.2).
                let roc = ((index >> 16) as u32).to_be_bytes();
                let mut mac = hmac::Context::with_key(auth);
                mac.update(packet);
                mac.update(&roc);
                let tag = mac.sign();
                packet.extend_from_slice(&tag.as_ref()[..10]);
            }
            Cipher::Gcm { key, salt } => {
                // IV = (0⁰¹⁶ ‖ SSRC ‖ ROC ‖ SEQ) ⊕ salt (RFC 7714 §8.1); AAD = the header.
                let mut iv = [0u8; 12];
                iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
                iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
                for (b, s) in iv.iter_mut().zip(salt) {
                    *b ^= s;
                }
                let (header, payload) = packet.split_at_mut(header_len);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&*header),
                        payload,
                    )
                    .map_err(|_| SrtpError::Encrypt)?;
                packet.extend_from_slice(tag.as_ref());
            }
        }
        Ok(())
    }
}

/// The AES-CM PRF of RFC 3711 §4.3.3: `out` gets the key stream of the master key at
/// IV = (label ‖ 0⁴⁸ ⊕ master salt) · 2¹⁶. A 96-bit GCM salt is padded to 112 bits with zeros
/// (RFC 7714 §11).
fn derive(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) -> Result<(), SrtpError> {
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    let algorithm = match master_key.len() {
        16 => &AES_128,
        _ => &aws_lc_rs::cipher::AES_256,
    };
    let key = UnboundCipherKey::new(algorithm, master_key).map_err(|_| SrtpError::Key)?;
    let key = EncryptingKey::ctr(key).map_err(|_| SrtpError::Key)?;
    out.fill(0);
    key.less_safe_encrypt(out, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| SrtpError::Encrypt)?;
    Ok(())
}

/// Why a packet may not be protected with the index its extended sequence number gives: sending
/// it would repeat a key stream (AES-CM) or a nonce (AES-GCM), or confuse the receiver's rollover
/// count. The packet is dropped.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("index {index:#x} is from before rollover {roc}: a late packet across a sequence-number wrap")]
    BackAcrossWrap { index: u64, roc: u32 },
    #[error("index {0:#x} was used already, or is too far back to tell")]
    Used(u64),
    #[error("index {0:#x} does not fit 48 bits: the SRTP keys must be renewed")]
    Exhausted(u64),
}

/// The SRTP packet index of each packet one SSRC sends (RFC 3711 §3.3.1), and the guard that no
/// index is ever used twice.
///
/// The index is the sender's extended sequence number, ROC · 2¹⁶ + SEQ: the caller passes the
/// 64-bit sequence number of its outgoing line ([`crate::media::Continuity`]), never the 16 bits
/// of the header, from which a late packet near a wrap cannot tell its rollover. On top of that:
/// - an index from an earlier rollover than the highest one sent is refused: the ROC a receiver
///   sees never steps back, so its estimate (RFC 3711 §3.3.1) never has to guess ROC − 1;
/// - an index sent before, or too far back to know ([`WINDOW`]), is refused;
/// - an index of 2⁴⁸ or more is refused (the keys would have to be renewed first).
///
/// Every index it returns is unique for the SSRC, whatever it is given. Fixed size, no allocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RolloverCounter {
    /// Highest index sent.
    highest: Option<u64>,
    /// Bit i set: `highest - i` was sent.
    sent: u64,
}

/// How far back (in indices) below the highest one a packet may still go out.
pub const WINDOW: u64 = 64;

/// The first index that does not fit the 48 bits of an SRTP index.
const INDEX_LIMIT: u64 = 1 << 48;

impl RolloverCounter {
    /// The index of the packet with extended sequence number `seq`, now taken: it is `seq`.
    pub fn index(&mut self, seq: u64) -> Result<u64, IndexError> {
        if seq >= INDEX_LIMIT {
            return Err(IndexError::Exhausted(seq));
        }
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.sent = 1;
            return Ok(seq);
        };
        if seq > highest {
            let ahead = seq - highest;
            self.sent = if ahead >= WINDOW { 1 } else { (self.sent << ahead) | 1 };
            self.highest = Some(seq);
            return Ok(seq);
        }
        if seq >> 16 != highest >> 16 {
            return Err(IndexError::BackAcrossWrap { index: seq, roc: (highest >> 16) as u32 });
        }
        let back = highest - seq;
        if back >= WINDOW || self.sent & (1 << back) != 0 {
            return Err(IndexError::Used(seq));
        }
        self.sent |= 1 << back;
        Ok(seq)
    }

    /// The rollover count of the highest index sent.
    pub fn roc(&self) -> u32 {
        self.highest.map_or(0, |h| (h >> 16) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()
    }

    /// RFC 3711 Appendix B.3: key derivation test vectors.
    #[test]
    fn key_derivation_matches_rfc3711() -> Result<(), SrtpError> {
        let key = unhex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = unhex("0EC675AD498AFEEBB6960B3AABE6");
        let mut cipher = [0u8; 16];
        derive(&key, &salt, LABEL_RTP_KEY, &mut cipher)?;
        assert_eq!(cipher.to_vec(), unhex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut session_salt = [0u8; 14];
        derive(&key, &salt, LABEL_RTP_SALT, &mut session_salt)?;
        assert_eq!(session_salt.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&key, &salt, LABEL_RTP_AUTH, &mut auth)?;
        assert_eq!(auth.to_vec(), unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
        Ok(())
    }

    #[test]
    fn the_index_is_the_extended_sequence_number_and_never_steps_back_across_a_wrap() {
        let mut roc = RolloverCounter::default();
        assert_eq!(roc.index(65_534), Ok(65_534));
        assert_eq!(roc.index(65_536), Ok(1 << 16));
        // Late from before the wrap: ROC 0 while 1 went out already.
        assert_eq!(roc.index(65_535), Err(IndexError::BackAcrossWrap { index: 65_535, roc: 1 }));
        assert_eq!(roc.index(65_538), Ok((1 << 16) | 2));
        // Reordered within the rollover: goes out once.
        assert_eq!(roc.index(65_537), Ok((1 << 16) | 1));
        assert_eq!(roc.index(65_537), Err(IndexError::Used(65_537)));
        assert_eq!(roc.index(65_536), Err(IndexError::Used(65_536)));
        assert_eq!(roc.roc(), 1);
        assert_eq!(roc.index((1 << 48) - 1), Ok((1 << 48) - 1));
        assert_eq!(roc.index(1 << 48), Err(IndexError::Exhausted(1 << 48)));
    }

    #[test]
    fn wrong_keying_material_is_refused() {
        let err = SrtpSender::from_keying_material(Profile::AeadAes128Gcm, &[0; 10], true).err();
        assert_eq!(
            err,
            Some(SrtpError::KeyingMaterial { profile: Profile::AeadAes128Gcm, got: 10, need: 56 })
        );
    }

    #[test]
    fn protect_appends_the_tag_and_keeps_the_header() -> Result<(), SrtpError> {
        for profile in [Profile::Aes128CmSha1_80, Profile::AeadAes128Gcm, Profile::AeadAes256Gcm] {
            let material = vec![7u8; profile.keying_material_len()];
            let sender = SrtpSender::from_keying_material(profile, &material, false)?;
            let header = unhex("80 6f 12 34 00 00 03 c0 de ad be ef");
            let mut packet = header.clone();
            packet.extend_from_slice(b"opus payload");
            sender.protect(&mut packet, 12, 0xdead_beef, 0x1234)?;
            assert_eq!(&packet[..12], &header[..]);
            assert_eq!(packet.len(), 12 + 12 + profile.overhead());
            assert_ne!(&packet[12..24], b"opus payload");
            assert!(sender.protect(&mut packet, 4, 1, 1).is_err());
        }
        Ok(())
    }

    /// An independent SRTP implementation (webrtc-rs's rtc-srtp) opens what Tolk protects, in
    /// every profile, across a rollover of the sequence number.
    #[test]
    fn webrtc_rs_decrypts_what_tolk_protects() -> Result<(), Box<dyn std::error::Error>> {
        use rtc_crypto::RTCCryptoProvider;
        use rtc_srtp::protection_profile::ProtectionProfile;
        let provider = rtc_crypto::providers::AwsLcRsProvider::new();
        for (profile, theirs) in [
            (Profile::Aes128CmSha1_80, ProtectionProfile::Aes128CmHmacSha1_80),
            (Profile::AeadAes128Gcm, ProtectionProfile::AeadAes128Gcm),
            (Profile::AeadAes256Gcm, ProtectionProfile::AeadAes256Gcm),
        ] {
            let material: Vec<u8> = (0..profile.keying_material_len()).map(|i| (i * 37 + 11) as u8).collect();
            let (key_len, salt_len) = profile.lengths();
            // We are the DTLS server: our keys are the server's (second key, second salt).
            let key = &material[key_len..2 * key_len];
            let salt = &material[2 * key_len + salt_len..];
            let mut them = rtc_srtp::context::Context::new(key, salt, theirs, None, None, provider.crypto())?;
            let ours = SrtpSender::from_keying_material(profile, &material, false)?;
            let mut roc = RolloverCounter::default();
            for (n, ext) in (65_533u64..65_539).enumerate() {
                let seq = ext as u16;
                let payload: Vec<u8> = (0..40 + n).map(|i| (i * 3 + n) as u8).collect();
                let mut packet = unhex("80 6f 00 00 00 01 e2 40 12 34 56 78");
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                let header = packet.clone();
                packet.extend_from_slice(&payload);
                ours.protect(&mut packet, 12, 0x1234_5678, roc.index(ext)?)?;
                let plain = them.decrypt_rtp(&packet)?;
                assert_eq!(&plain[..12], &header[..], "{profile:?} seq {seq}");
                assert_eq!(&plain[12..], &payload[..], "{profile:?} seq {seq}");
            }
        }
        Ok(())
    }

    mod properties {
        use std::collections::HashSet;

        use proptest::prelude::*;

        use super::super::*;

        /// What the guard must do, written the plain way: every index ever taken in a set.
        #[derive(Default)]
        struct Reference {
            taken: HashSet<u64>,
            highest: Option<u64>,
        }

        impl Reference {
            fn index(&mut self, seq: u64) -> Result<u64, IndexError> {
                if seq >= 1 << 48 {
                    return Err(IndexError::Exhausted(seq));
                }
                if let Some(highest) = self.highest
                    && seq <= highest
                {
                    if seq / 65_536 < highest / 65_536 {
                        return Err(IndexError::BackAcrossWrap {
                            index: seq,
                            roc: (highest / 65_536) as u32,
                        });
                    }
                    if highest - seq >= WINDOW || self.taken.contains(&seq) {
                        return Err(IndexError::Used(seq));
                    }
                }
                self.taken.insert(seq);
                self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
                Ok(seq)
            }
        }

        /// Extended sequence numbers as a line produces them, and worse: mostly one ahead, gaps,
        /// late and repeated ones, wild jumps, now and then one past 48 bits; starting just before
        /// a rollover so that the walk crosses several.
        fn walk() -> impl Strategy<Value = Vec<u64>> {
            let step = prop_oneof![
                8 => Just(1i64),
                2 => 2i64..40,
                3 => -80i64..=0,
                1 => -70_000i64..70_000,
            ];
            let start = (1u64..4, 0u64..300).prop_map(|(roc, lead)| (roc << 16) - lead);
            (start, proptest::collection::vec((step, 0u32..100), 1..600)).prop_map(|(start, steps)| {
                let mut cursor = start;
                steps
                    .into_iter()
                    .map(|(step, wild)| {
                        let seq = cursor.saturating_add_signed(step);
                        cursor = cursor.max(seq);
                        if wild == 0 { (1 << 48) + (seq & 0xff) } else { seq }
                    })
                    .collect()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// The guard agrees with the reference on every packet, so every index it hands out
            /// is the extended sequence number, below 2⁴⁸, and unique; and the rollover count of
            /// what it hands out never steps back.
            #[test]
            fn the_rollover_counter_agrees_with_the_reference(walk in walk()) {
                let mut guard = RolloverCounter::default();
                let mut reference = Reference::default();
                let mut taken = HashSet::new();
                let mut roc = 0;
                for seq in walk {
                    let got = guard.index(seq);
                    prop_assert_eq!(got, reference.index(seq), "seq {:#x}", seq);
                    if let Ok(index) = got {
                        prop_assert_eq!(index, seq);
                        prop_assert!(index < 1 << 48);
                        prop_assert!(taken.insert(index), "index {:#x} twice", index);
                        prop_assert!(index >> 16 >= roc, "the rollover count stepped back");
                        roc = index >> 16;
                        prop_assert_eq!(u64::from(guard.roc()), roc);
                    }
                }
            }
        }
    }
}
