//! What a BigBlueButton server answers: the API's XML (`isMeetingRunning`, `getMeetingInfo`,
//! `join` with its `Set-Cookie`, `getMeetings` with each meeting's metadata), `/api/stuns`' JSON,
//! bbb-webrtc-sfu's websocket messages (with the SDP's first candidate address), and bbb-web's
//! answer to a session check (status, headers, JSON body).
//!
//! Input: the first byte picks the parser, the rest is the answer (for the XML: the body, a NUL,
//! then the `Set-Cookie` value; for a session check: a status byte, `Name: value` header lines,
//! a NUL, then the body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tolk_relay::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    match kind % 7 {
        0..=2 => {
            let call = ["isMeetingRunning", "getMeetingInfo", "join"][usize::from(kind % 7)];
            let (body, cookie) = match rest.iter().position(|b| *b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            // reqwest reads a body as text, replacing what is not UTF-8.
            fuzzing::bbb_api_answer(call, &String::from_utf8_lossy(body), cookie);
        }
        3 => {
            fuzzing::bbb_stuns(&String::from_utf8_lossy(rest));
        }
        5 => {
            fuzzing::bbb_meetings(&String::from_utf8_lossy(rest));
        }
        6 => {
            let Some((&status, rest)) = rest.split_first() else { return };
            let (headers, body) = match rest.iter().position(|b| *b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            fuzzing::bbb_session_answer(status, headers, body);
        }
        _ => {
            // A websocket text message is UTF-8.
            if let Ok(text) = std::str::from_utf8(rest) {
                fuzzing::bbb_sfu_message(text);
            }
        }
    }
});
