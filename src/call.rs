//! One call as Voicenter describes it, whichever of its three request formats carried it.

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

impl CallDetails {
    /// The call state in canonical form: lower case, with Voicenter's `Ringin` read as
    /// `ringing`.
    pub fn canonical_state(&self) -> Option<String> {
        self.state.as_deref().map(canonical_state)
    }
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
}
