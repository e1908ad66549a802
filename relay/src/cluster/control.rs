//! Control messages about one event, published by the node that decides (its origin, or the node
//! an organiser called) to every node serving the event. Media never waits for them: they keep
//! the edges' views (who is on air) and sessions (a cancelled event) in step with the origin.

use serde::{Deserialize, Serialize};

use crate::ids::Language;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_as_written_and_junk_is_refused() {
        let on_air = Control::OnAir {
            channels: vec![Speaking {
                language: Language::parse("fr").unwrap(),
                interpreter: Some("Ana".into()),
                muted: false,
            }],
        };
        let json = serde_json::to_string(&on_air).unwrap();
        assert_eq!(serde_json::from_str::<Control>(&json).unwrap(), on_air);
        assert_eq!(serde_json::from_str::<Control>(r#"{"kind":"ended"}"#).unwrap(), Control::Ended);
        assert!(
            serde_json::from_str::<Control>(r#"{"kind":"on_air","channels":[{"language":"!!"}]}"#).is_err()
        );
    }
}

/// Who speaks in one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaking {
    /// The channel.
    pub language: Language,
    /// The interpreter on air (their name), None: the floor.
    pub interpreter: Option<String>,
    /// Coughing.
    pub muted: bool,
}

/// What changed about an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// Who is on air, in every channel with someone on air (the origin's booths, after a change).
    OnAir {
        /// The channels with someone on air.
        channels: Vec<Speaking>,
    },
    /// The event changed (channels, window): every node reads it again from the store.
    Layout,
    /// The event was cancelled or ended: every node drops its sessions.
    Ended,
}
