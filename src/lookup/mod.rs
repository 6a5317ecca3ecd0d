//! The service itself: a call's number -> verified matching entries -> the popup answer.
//! This is the only place that decides what matches, which match is best and what TOTAL is.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use crate::call::{canonical_state, state_in, CallDetails};
pub use crate::directory::Match;
use crate::directory::{Directory, DirectoryError, Entry};
use crate::mapping::{Context, Template};
use crate::phone::{Caller, CallerError, CallerNumber, PhoneKey, PhoneNormalizer};
use cache::AnswerCache;

mod cache;
mod settings;

pub use settings::{AnswerCaps, LookupSettings, ResponseSettings, ScopeSettings};

/// What Voicenter's extension shows; the HTTP layer turns it into JSON with `STATUS: OK`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PopupAnswer {
    /// CLIENTNAME
    pub client_name: Option<String>,
    /// COMPANY
    pub company: Option<String>,
    /// URL
    pub url: Option<String>,
    /// TOTAL: distinct matching entries.
    pub total: usize,
}

/// Why the answer is what it is; `popup-ldap lookup` prints it.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The caller as read from `phone`.
    pub caller: Option<Caller>,
    /// Set when the call state is not one that is looked up.
    pub skipped_state: Option<String>,
    /// What each scope's source was asked, in rank order.
    pub searches: Vec<Search>,
    /// Verified matches, best first.
    pub matches: Vec<Match>,
    /// Candidates a source returned that do not hold the number, with their scope's position.
    pub rejected: Vec<(usize, Entry)>,
}

impl Trace {
    /// The server that answered (or that the index was last synced from) the first scope.
    pub fn server(&self) -> Option<&Arc<String>> {
        self.searches.iter().find_map(|s| s.server.as_ref())
    }
}

/// What one scope's source was asked, and who answered.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// The scope's name, when the configuration lists scopes.
    pub scope: Option<String>,
    /// The LDAP filter sent (live mode).
    pub filter: Option<String>,
    /// The server that answered (live mode), or the index was last synced from.
    pub server: Option<Arc<String>>,
}

/// A lookup's answer and its explanation.
#[derive(Debug)]
// `sent` first, beside the reference counts that giving a kept answer again touches anyway:
// answering it then reads no other line of the answer.
#[repr(C)]
pub struct Answer {
    /// What the HTTP layer sends and logs, kept the first time it is sent: an answer given
    /// again from the kept answers is not rendered again. See [`Answer::sent`].
    sent: OnceLock<Sent>,
    /// What to send back.
    pub popup: PopupAnswer,
    /// How it was reached.
    pub trace: Trace,
}

/// An answer as it was sent: its popup rendered, and what its log line and counters read.
#[derive(Debug)]
pub struct Sent {
    /// The popup as the HTTP layer sends it.
    pub body: Bytes,
    /// What the answer found.
    pub outcome: Outcome,
    /// The popup's TOTAL.
    pub total: usize,
    /// [`Trace::server`].
    pub server: Option<Arc<String>>,
}

/// A copy starts unsent: its `popup` may be changed, and what was sent for the original
/// must not be sent for it.
impl Clone for Answer {
    fn clone(&self) -> Self {
        Answer::new(self.popup.clone(), self.trace.clone())
    }
}

/// What a lookup found, as requests are counted and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Entries matched.
    Match,
    /// Nobody matched, or the number was withheld.
    Unknown,
    /// A call state that is not looked up.
    Skipped,
}

impl Answer {
    /// An answer not sent yet.
    pub fn new(popup: PopupAnswer, trace: Trace) -> Self {
        Answer {
            sent: OnceLock::new(),
            popup,
            trace,
        }
    }

    /// The answer as sent: `popup` rendered by `render` the first time, the same after that.
    /// (Answers are shared through `Arc`, so they no longer change once one is sent.)
    pub fn sent(&self, render: impl FnOnce(&PopupAnswer) -> Bytes) -> &Sent {
        self.sent.get_or_init(|| Sent {
            body: render(&self.popup),
            outcome: self.outcome(),
            total: self.popup.total,
            server: self.trace.server().cloned(),
        })
    }

    /// What this answer found: the one place lookup outcomes are named.
    pub fn outcome(&self) -> Outcome {
        match (self.trace.skipped_state.is_some(), self.popup.total) {
            (true, _) => Outcome::Skipped,
            (false, 0) => Outcome::Unknown,
            (false, _) => Outcome::Match,
        }
    }
}

/// Why there is no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The request has no `phone` field.
    #[error("missing field `phone`")]
    MissingPhone,
    /// `phone` is not a phone number.
    #[error(transparent)]
    BadPhone(#[from] CallerError),
    /// The directory failed.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// The directory did not answer in time.
    #[error("the directory did not answer within {} ms (lookup.deadline_ms)", .0.as_millis())]
    Deadline(Duration),
}

impl LookupError {
    /// True when the request was at fault, not the service.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, LookupError::MissingPhone | LookupError::BadPhone(_))
    }
}

/// What a [`Lookup`] is built from: the scopes, `[phone]`, `[lookup]` and `[response]`.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The scopes in rank order (`[directory]`'s one, or its `[[directory.scope]]`).
    pub scopes: &'a [ScopeSettings],
    /// `[phone]`
    pub phone: &'a PhoneNormalizer,
    /// `[lookup]`
    pub lookup: &'a LookupSettings,
    /// `[response]`
    pub response: &'a ResponseSettings,
}

impl Setup<'_> {
    /// The request fields any template reads, besides the caller's number.
    fn call_fields(&self) -> crate::mapping::CallFieldsRead {
        self.scopes
            .iter()
            .fold(self.response.call_fields(), |read, s| {
                read.or(s.response.call_fields())
            })
    }

    /// Attributes a search must return: the phone attributes, the country attributes and
    /// those the templates read.
    pub fn wanted_attributes(&self) -> Vec<String> {
        let mut attrs: BTreeSet<String> = self.response.attributes();
        for scope in self.scopes {
            attrs.extend(scope.response.attributes());
            attrs.extend(scope.directory.phone_attributes.iter().cloned());
            attrs.extend(scope.phone.country_attributes().iter().cloned());
        }
        attrs.extend(self.phone.country_attributes().iter().cloned());
        attrs.into_iter().collect()
    }
}

/// Looks callers up in the configured directory.
pub struct Lookup {
    directory: Directory,
    /// `[phone]`: reads the caller's number.
    phone: PhoneNormalizer,
    /// How each scope's entries are verified and answered, in rank order.
    scopes: Vec<ScopeRules>,
    /// `[response]`: the unknown caller's answer.
    response: ResponseSettings,
    states: Option<BTreeSet<String>>,
    deadline: Duration,
    /// `[lookup] answer_cache`: `None` when off.
    cache: Option<AnswerCache>,
}

/// How one scope's entries are verified and answered.
struct ScopeRules {
    phone: PhoneNormalizer,
    phone_attributes: Vec<String>,
    response: ResponseSettings,
}

impl Lookup {
    /// Opens the configured directory sources (in index mode: reads them).
    pub async fn open(setup: Setup<'_>) -> Result<Self, DirectoryError> {
        let wanted = setup.wanted_attributes();
        let sources: Vec<_> = setup
            .scopes
            .iter()
            .map(|s| (&s.directory, &s.phone))
            .collect();
        Ok(Lookup {
            directory: Directory::open(&sources, &wanted).await?,
            phone: setup.phone.clone(),
            scopes: setup
                .scopes
                .iter()
                .map(|s| ScopeRules {
                    phone: s.phone.clone(),
                    phone_attributes: s.directory.phone_attributes.clone(),
                    response: s.response.clone(),
                })
                .collect(),
            response: setup.response.clone(),
            states: setup.lookup.states.clone(),
            deadline: setup.lookup.deadline,
            cache: setup
                .lookup
                .answer_cache
                .then(|| AnswerCache::new(setup.call_fields())),
        })
    }

    /// The directory source.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// How many scopes there are.
    pub fn scopes(&self) -> usize {
        self.scopes.len()
    }

    /// How scope `scope` reads its stored numbers, and its phone attributes.
    pub fn scope_rules(&self, scope: usize) -> Option<(&PhoneNormalizer, &[String])> {
        self.scopes
            .get(scope)
            .map(|s| (&s.phone, s.phone_attributes.as_slice()))
    }

    /// Answers one call: a caller asked about again (another extension ringing, the next
    /// phase of the call) from the answers kept while the directory has not changed.
    pub async fn answer(&self, call: &CallDetails) -> Result<Arc<Answer>, LookupError> {
        let phone = call.phone.as_deref().ok_or(LookupError::MissingPhone)?;
        if let (Some(states), Some(state)) = (&self.states, call.state.as_deref()) {
            if !state_in(states, state) {
                let trace = Trace {
                    caller: Some(self.phone.caller(phone)?),
                    skipped_state: Some(canonical_state(state)),
                    ..Trace::default()
                };
                return Ok(Arc::new(Answer::new(PopupAnswer::default(), trace)));
            }
        }
        let cache = self.cache.as_ref().zip(self.directory.generation());
        if let Some(kept) = cache.and_then(|(cache, at)| cache.get(call, at)) {
            return Ok(kept);
        }
        let answer = Arc::new(self.look_up(call, phone).await?);
        if let Some((cache, at)) = cache {
            // Only what the directory was asked for, and only if nothing changed meanwhile.
            if !answer.trace.searches.is_empty() && self.directory.generation() == Some(at) {
                cache.keep(call, at, &answer);
            }
        }
        Ok(answer)
    }

    /// [`Lookup::answer`] without the kept answers, for a state that is looked up.
    async fn look_up(&self, call: &CallDetails, phone: &str) -> Result<Answer, LookupError> {
        let mut trace = Trace::default();
        let number = match self.phone.caller(phone)? {
            Caller::Withheld => {
                trace.caller = Some(Caller::Withheld);
                return Ok(Answer::new(self.unknown(call, None), trace));
            }
            Caller::Number(n) => n,
        };
        if matches!(number.key, PhoneKey::Digits(_)) {
            // A number of no country: whoever holds the same digits is not this caller.
            let popup = self.unknown(call, Some(&number));
            trace.caller = Some(Caller::Number(number));
            return Ok(Answer::new(popup, trace));
        }
        self.find(&number, &mut trace).await?;
        let popup = match trace.matches.first() {
            None => self.unknown(call, Some(&number)),
            Some(best) => self.popup(
                self.scopes
                    .get(best.scope)
                    .map_or(&self.response, |s| &s.response),
                &Context {
                    entry: Some(&best.entry),
                    call,
                    e164: e164(&number),
                    total: trace.matches.len(),
                },
            ),
        };
        trace.caller = Some(Caller::Number(number));
        Ok(Answer::new(popup, trace))
    }

    /// Asks the directory for candidates within the deadline and keeps in `trace` the
    /// verified ones, best first and each entry once, and the rejected ones.
    async fn find(&self, number: &CallerNumber, trace: &mut Trace) -> Result<(), LookupError> {
        let found = match self.directory.held_candidates(number) {
            Some(found) => found,
            // Boxed: the live search's future is kilobytes, and this one (built and moved
            // for every call from memory too) would carry it.
            None => Box::pin(tokio::time::timeout(
                self.deadline,
                self.directory.candidates(number),
            ))
            .await
            .map_err(|_| LookupError::Deadline(self.deadline))??,
        };
        for found in found {
            trace.searches.push(Search {
                scope: self.directory.scope_name(found.scope).map(str::to_owned),
                filter: found.filter,
                server: found.server,
            });
            if trace.matches.is_empty() {
                // The one scope's (or the first's) matches as they are: no copy.
                trace.matches = found.matches;
            } else {
                trace.matches.extend(found.matches);
            }
            for entry in found.unverified {
                match self.verify(found.scope, &entry, &number.key) {
                    Some((rank, attribute, field)) => trace.matches.push(Match {
                        entry,
                        attribute,
                        field,
                        rank,
                        scope: found.scope,
                    }),
                    None => trace.rejected.push((found.scope, entry)),
                }
            }
        }
        if trace.matches.len() > 1 {
            // Best first: the first scope, then the first attribute, then the DN; an entry in
            // two scopes counts once, in the first.
            trace
                .matches
                .sort_by_cached_key(|m| (m.scope, m.rank, m.entry.dn().to_lowercase()));
            let mut seen = HashSet::new();
            trace
                .matches
                .retain(|m| seen.insert(m.entry.dn().to_lowercase()));
        }
        Ok(())
    }

    /// The first phone attribute (in priority order) and value of `entry`, found in `scope`,
    /// that hold `key`: the attribute's rank and name, and the value's field position.
    fn verify(
        &self,
        scope: usize,
        entry: &Entry,
        key: &PhoneKey,
    ) -> Option<(usize, &'static str, usize)> {
        let rules = self.scopes.get(scope)?;
        let region = rules.phone.entry_country(|a| entry.values(a).next()).region;
        rules
            .phone_attributes
            .iter()
            .enumerate()
            .find_map(|(rank, attr)| {
                entry
                    .positions(attr)
                    .find(|(_, v)| rules.phone.stored_in(v, region).contains(key))
                    .and_then(|(field, _)| Some((rank, entry.field(field)?.0, field)))
            })
    }

    fn unknown(&self, call: &CallDetails, number: Option<&CallerNumber>) -> PopupAnswer {
        // A withheld caller has no number for templates, whatever word `phone` carried.
        let withheld;
        let call = match number {
            Some(_) => call,
            None => {
                withheld = CallDetails {
                    phone: None,
                    ..call.clone()
                };
                &withheld
            }
        };
        self.popup(
            &self.response,
            &Context {
                entry: None,
                call,
                e164: number.and_then(e164),
                total: 0,
            },
        )
    }

    /// Renders `response`'s CLIENTNAME, COMPANY and URL for `ctx.total` matches within
    /// `response.max_*_chars`: text is cut with `…`; a URL over its cap is left out, since a
    /// cut link opens the wrong page.
    fn popup(&self, response: &ResponseSettings, ctx: &Context<'_>) -> PopupAnswer {
        let [client_name, company, url] = response.templates(ctx.total);
        let caps = &response.caps;
        let render = |t: Option<&Template>| t.and_then(|t| t.render(ctx));
        PopupAnswer {
            client_name: render(client_name).map(|v| shorten(v, caps.client_name)),
            company: render(company).map(|v| shorten(v, caps.company)),
            url: render(url).filter(|v| v.len() <= caps.url || v.chars().count() <= caps.url),
            total: ctx.total,
        }
    }
}

/// `text` cut to at most `max` characters, the last of them `…` when anything was cut.
fn shorten(mut text: String, max: usize) -> String {
    // No more bytes than allowed characters: nothing to count.
    if text.len() <= max {
        return text;
    }
    if let Some((cut, _)) = text.char_indices().nth(max.saturating_sub(1)) {
        if text[cut..].chars().nth(1).is_some() {
            text.truncate(cut);
            text.push('…');
        }
    }
    text
}

fn e164(number: &CallerNumber) -> Option<&str> {
    match &number.key {
        PhoneKey::E164(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Config;
    use futures_util::FutureExt;

    const LDIF: &str = "\
dn: uid=zed,dc=x
cn: Zed Mobile
mobile: 03-5551234

dn: uid=amy,dc=x
cn: Amy Office
o: Acme
telephoneNumber: +972 (0)3 555 1234

dn: uid=bob,dc=x
cn: Bob Office
telephoneNumber: (03) 555 1234
uid: bob

dn: uid=ext,dc=x
cn: Reception
ipPhone: 1234
";

    async fn lookup(extra: &str) -> Lookup {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("d.ldif"), LDIF).expect("write");
        let text = format!(
            "[directory]\nsource = \"ldif\"\nldif = \"d.ldif\"\n\
             phone_attributes = [\"telephoneNumber\", \"mobile\", \"ipPhone\"]\n{extra}"
        );
        let config = Config::parse(&text, dir.path()).expect("config");
        Lookup::open(config.lookup_setup()).await.expect("lookup")
    }

    fn call(phone: &str) -> CallDetails {
        CallDetails {
            phone: Some(phone.to_owned()),
            ..CallDetails::default()
        }
    }

    #[tokio::test]
    async fn a_lookup_from_memory_is_done_on_its_first_poll() {
        // The HTTP handler answers these without a future of their own; an await on this
        // path would send every GET the slow way.
        let l = lookup("").await;
        assert!(l.directory().in_memory());
        let a = l
            .answer(&call("972-3-5551234"))
            .now_or_never()
            .expect("done on the first poll")
            .expect("answer");
        assert_eq!(
            (a.popup.client_name.as_deref(), a.popup.total),
            (Some("Amy Office"), 3)
        );
    }

    #[tokio::test]
    async fn best_match_by_attribute_priority_then_dn() {
        let l = lookup("[response]\nurl = \"https://i.example/{uid|cn}\"").await;
        let a = l.answer(&call("972-3-5551234")).await.expect("answer");
        assert_eq!(
            a.popup,
            PopupAnswer {
                client_name: Some("Amy Office".into()),
                company: Some("Acme".into()),
                url: Some("https://i.example/Amy%20Office".into()),
                total: 3,
            }
        );
        let order: Vec<_> = a.trace.matches.iter().map(|m| m.entry.dn()).collect();
        assert_eq!(order, ["uid=amy,dc=x", "uid=bob,dc=x", "uid=zed,dc=x"]);
        assert_eq!(a.trace.matches[2].attribute, "mobile");
    }

    #[tokio::test]
    async fn several_matches_use_the_multiple_templates_where_set() {
        let l = lookup(
            "[response]\nmultiple_client_name = \"{total} contacts · {company|o}\"\n\
             multiple_url = \"https://crm.example/search?phone={call.e164}&n={total}\"\n\
             url = \"https://i.example/{uid|cn}\"",
        )
        .await;
        let a = l.answer(&call("972-3-5551234")).await.expect("answer");
        assert_eq!(
            a.popup,
            PopupAnswer {
                client_name: Some("3 contacts · Acme".into()),
                // No multiple_company: the best match's company, as with one match.
                company: Some("Acme".into()),
                url: Some("https://crm.example/search?phone=%2B97235551234&n=3".into()),
                total: 3,
            }
        );
        // One match: the ordinary templates, whatever the multiple_* ones say.
        let a = l.answer(&call("1234")).await.expect("answer");
        assert_eq!(a.popup.client_name.as_deref(), Some("Reception"));
        assert_eq!(a.popup.url.as_deref(), Some("https://i.example/Reception"));
        // {total} reads 1 and 0 in the other templates.
        let l = lookup(
            "[response]\nclient_name = \"{cn} ({total})\"\nunknown_company = \"{total} found\"",
        )
        .await;
        let a = l.answer(&call("1234")).await.expect("answer");
        assert_eq!(a.popup.client_name.as_deref(), Some("Reception (1)"));
        let a = l.answer(&call("0501111111")).await.expect("answer");
        assert_eq!(a.popup.company.as_deref(), Some("0 found"));
    }

    #[tokio::test]
    async fn unknown_and_withheld_callers_get_the_unknown_fields() {
        let l = lookup(
            "[response]\nunknown_url = \"https://crm.example/new?p={call.phone}&e={call.e164}\"",
        )
        .await;
        let a = l.answer(&call("0501111111")).await.expect("answer");
        assert_eq!(a.popup.total, 0);
        assert_eq!(
            a.popup.url.as_deref(),
            Some("https://crm.example/new?p=0501111111&e=%2B972501111111")
        );
        let a = l.answer(&call("Anonymous")).await.expect("answer");
        assert_eq!(a.popup.total, 0);
        // No number, so the template cannot be completed and is left out.
        assert_eq!(a.popup.url, None);
        let l =
            lookup("[response]\nunknown_client_name = \"Unknown caller {call.phone|call.did}\"")
                .await;
        let mut c = call("Private");
        c.did = Some("0722776773".into());
        let a = l.answer(&c).await.expect("answer");
        assert_eq!(
            a.popup.client_name.as_deref(),
            Some("Unknown caller 0722776773")
        );
    }

    #[tokio::test]
    async fn extensions_match_only_as_extensions() {
        let l = lookup("").await;
        let a = l.answer(&call("1234")).await.expect("answer");
        assert_eq!(a.popup.client_name.as_deref(), Some("Reception"));
        let a = l.answer(&call("0721234")).await.expect("answer");
        assert_eq!(a.popup.total, 0);
    }

    #[tokio::test]
    async fn states_not_listed_are_not_looked_up() {
        let l = lookup("[lookup]\nstates = [\"ringing\"]").await;
        let mut c = call("035551234");
        c.state = Some("Answer".into());
        let a = l.answer(&c).await.expect("answer");
        assert_eq!(a.popup, PopupAnswer::default());
        assert_eq!(a.trace.skipped_state.as_deref(), Some("answer"));
        c.state = Some("Ringin".into());
        assert_eq!(l.answer(&c).await.expect("answer").popup.total, 3);
    }

    #[tokio::test]
    async fn a_repeated_caller_gets_the_kept_answer_in_a_state_that_is_looked_up() {
        let l = lookup("[lookup]\nstates = [\"ringing\"]").await;
        let ringing = |agent: &str| CallDetails {
            state: Some("Ringin".into()),
            exten_user: Some(agent.into()),
            ..call("035551234")
        };
        let first = l.answer(&ringing("agent-1")).await.expect("answer");
        // Another extension of the ring group: another id, the same caller.
        let again = l.answer(&ringing("agent-2")).await.expect("answer");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(again.popup.total, 3);
        // The next phase is not looked up, whatever was kept.
        let answered = CallDetails {
            state: Some("Answer".into()),
            ..ringing("agent-2")
        };
        assert_eq!(l.answer(&answered).await.expect("answer").popup.total, 0);
        // The same number written otherwise is looked up again, to the same answer.
        let other = l.answer(&call("03-5551234")).await.expect("answer");
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.popup, first.popup);
    }

    #[tokio::test]
    async fn the_fields_templates_read_are_part_of_the_key() {
        let l = lookup("[response]\nurl = \"https://crm.example/{uid|cn}?agent={call.extenUser}\"")
            .await;
        let mut c = call("035551234");
        c.exten_user = Some("agent-1".into());
        let first = l.answer(&c).await.expect("answer");
        c.exten_user = Some("agent-2".into());
        let second = l.answer(&c).await.expect("answer");
        assert_eq!(
            second.popup.url.as_deref(),
            Some("https://crm.example/Amy%20Office?agent=agent-2")
        );
        assert!(Arc::ptr_eq(&l.answer(&c).await.expect("answer"), &second));
        assert!(!Arc::ptr_eq(&first, &second));
    }

    #[tokio::test]
    async fn with_the_cache_off_every_call_is_looked_up() {
        let l = lookup("[lookup]\nanswer_cache = false").await;
        let first = l.answer(&call("035551234")).await.expect("answer");
        let again = l.answer(&call("035551234")).await.expect("answer");
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!(first.popup, again.popup);
    }

    #[test]
    fn shortening_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(shorten("דנה לוי".into(), 16), "דנה לוי");
        assert_eq!(shorten("דנה לוי".into(), 4), "דנה…");
        assert_eq!(shorten("abcd".into(), 4), "abcd");
        assert_eq!(shorten("abcde".into(), 4), "abc…");
        assert_eq!(shorten("😀😀😀😀😀".into(), 3).chars().count(), 3);
    }

    #[tokio::test]
    async fn huge_directory_values_give_a_bounded_answer() {
        let name = "א".repeat(1_000_000);
        let dir = tempfile::tempdir().expect("tempdir");
        let ldif = format!(
            "dn: uid=big,dc=x\ncn: {name}\no: {name}\nuid: {}\ntelephoneNumber: 03-5551234\n",
            "u".repeat(5000)
        );
        std::fs::write(dir.path().join("d.ldif"), ldif).expect("write");
        let text = "[directory]\nsource = \"ldif\"\nldif = \"d.ldif\"\n\
                    [response]\nurl = \"https://i.example/{uid}\"\nmax_company_chars = 40\n";
        let config = Config::parse(text, dir.path()).expect("config");
        let l = Lookup::open(config.lookup_setup()).await.expect("lookup");
        let a = l.answer(&call("035551234")).await.expect("answer");
        let client_name = a.popup.client_name.clone().expect("name");
        assert_eq!(client_name.chars().count(), 256);
        assert!(client_name.ends_with("א…"));
        assert_eq!(
            a.popup.company.clone().expect("company").chars().count(),
            40
        );
        assert_eq!(a.popup.url, None, "a cut URL would lead elsewhere");
        assert_eq!(a.popup.total, 1);
    }

    #[tokio::test]
    async fn bad_phones_are_request_errors() {
        let l = lookup("").await;
        let e = l
            .answer(&CallDetails::default())
            .await
            .expect_err("no phone");
        assert!(e.is_bad_request());
        let e = l.answer(&call("*)(uid=*")).await.expect_err("garbage");
        assert!(e.is_bad_request(), "{e}");
    }
}
