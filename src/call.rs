//! One call as Voicenter describes it, whichever of its three request formats carried it.

use std::collections::BTreeSet;

/// The fields of a Pop Up Screen request; every one is optional on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallDetails {
    /// `phone`: the customer's number, as sent.
    pub phone: Option<String>,
    /// `ivrid`: the call's unique id.
    pub ivrid: Option<String>,
    /// `extenUser`: the agent extension's id.
    pub exten_user: Option<String>,
    /// `did`: the number the customer dialled.
    pub did: Option<String>,
    /// `statusCall` or `status`: the call state, as sent.
    pub state: Option<String>,
}

/// Lower-cases a call state and folds the spelling variants Voicenter's documents use.
pub fn canonical_state(state: &str) -> String {
    let state = state.trim().to_lowercase();
    if state == "ringin" {
        "ringing".to_owned()
    } else {
        state
    }
}

/// Whether `state`, as sent, is one of `listed` (canonical forms); without allocating when it
/// is ASCII, as Voicenter's states are.
pub fn state_in(listed: &BTreeSet<String>, state: &str) -> bool {
    let state = state.trim();
    if !state.is_ascii() {
        return listed.contains(&canonical_state(state));
    }
    let state = if state.eq_ignore_ascii_case("ringin") {
        "ringing"
    } else {
        state
    };
    listed.iter().any(|l| l.eq_ignore_ascii_case(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_fold_case_and_spelling() {
        assert_eq!(canonical_state("Ringin"), "ringing");
        assert_eq!(canonical_state("RINGING"), "ringing");
        assert_eq!(canonical_state(" Dialing "), "dialing");
        assert_eq!(canonical_state("Answer"), "answer");
    }

    #[test]
    fn states_are_found_in_any_case_and_spelling() {
        let listed: BTreeSet<String> = ["ringing", "ánswer"].map(String::from).into();
        assert!(state_in(&listed, "Ringin"));
        assert!(state_in(&listed, " RINGING "));
        assert!(state_in(&listed, "ÁNSWER"));
        assert!(!state_in(&listed, "Dialing"));
        assert!(!state_in(&listed, "ring"));
    }
}
