//! `lookup`: one number looked up, and the answer explained: how the caller's number was
//! read, the source, the filter, every entry that matched or was rejected, and the JSON.

use std::fmt::Write as _;

use crate::call::CallDetails;
use crate::console::out;
use crate::directory::{DirectoryError, Entry};
use crate::http;
use crate::lookup::{Answer, Lookup, LookupError, Setup, Trace};
use crate::phone::{Caller, PhoneNormalizer};

/// Why a lookup could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The directory could not be opened.
    #[error("directory: {0}")]
    Open(#[from] DirectoryError),
    /// The lookup failed.
    #[error("lookup: {0}")]
    Answer(#[from] LookupError),
}

/// Looks `call` up and prints the explanation on stdout.
pub async fn lookup(setup: Setup<'_>, call: &CallDetails) -> Result<(), ExplainError> {
    let lookup = Lookup::open(setup).await?;
    let answer = lookup.answer(call).await;
    let text = match &answer {
        Ok(a) => report(&lookup, call, a),
        Err(e) if e.is_bad_request() => format!(
            "caller            {:?}\nanswer            HTTP 400 {}\n",
            call.phone.as_deref().unwrap_or(""),
            http::reply::error_json(&e.to_string())
        ),
        Err(_) => String::new(),
    };
    out(&text);
    answer.map(|_| ()).map_err(ExplainError::from)
}

/// The `lookup` report: everything an admin needs to tune filters and mapping.
pub fn report(lookup: &Lookup, call: &CallDetails, answer: &Answer) -> String {
    let mut out = String::new();
    let raw = call.phone.as_deref().unwrap_or("");
    let t = &answer.trace;
    // Writing into a String cannot fail.
    let _ = match &t.caller {
        Some(Caller::Number(n)) => writeln!(
            out,
            "caller            {raw:?} -> {}\nread as           {}\nforms             e164 {}  \
             national {}  digits {}  significant {}",
            n.key,
            n.reading,
            n.forms.e164(),
            n.forms.national(),
            n.forms.digits(),
            n.forms.significant()
        ),
        _ => writeln!(out, "caller            {raw:?} -> withheld number"),
    };
    let _ = writeln!(out, "source            {}", lookup.directory().describe());
    if let Some(state) = &t.skipped_state {
        let _ = writeln!(
            out,
            "state             {state:?} is not in lookup.states: answered without a lookup"
        );
    }
    for search in &t.searches {
        if let Some(scope) = &search.scope {
            let _ = writeln!(out, "scope             {scope}");
        }
        if let Some(filter) = &search.filter {
            let _ = writeln!(out, "filter            {filter}");
        }
        if let Some(server) = &search.server {
            let _ = writeln!(out, "server            {server}");
        }
    }
    let _ = writeln!(
        out,
        "entries           {} match{}",
        t.matches.len(),
        if t.rejected.is_empty() {
            String::new()
        } else {
            format!(
                ", {} returned by the filter but not holding the number",
                t.rejected.len()
            )
        }
    );
    entries(&mut out, lookup, t);
    let _ = writeln!(
        out,
        "answer            HTTP 200 {}",
        http::reply::popup_json(&answer.popup)
    );
    out
}

/// The matching entries, best first (by scope, then attribute, then DN), and the rejected
/// ones with how their values read.
fn entries(out: &mut String, lookup: &Lookup, t: &Trace) {
    if t.matches.len() > 1 {
        let _ = writeln!(
            out,
            "  best first: {}the first phone attribute that holds the number, then the DN",
            if lookup.scopes() > 1 {
                "the first scope with a match, then "
            } else {
                ""
            }
        );
    }
    for (i, m) in t.matches.iter().enumerate() {
        let Some((phone, _)) = lookup.scope_rules(m.scope) else {
            continue;
        };
        let country = phone.entry_country(|a| m.entry.values(a).next());
        let _ = writeln!(
            out,
            "  {}{} {}{}\n      matched {}: {:?}, read in {} ({})",
            i + 1,
            if i == 0 { " (best)" } else { "" },
            m.entry.dn(),
            in_scope(lookup, m.scope),
            m.attribute,
            m.value(),
            country.region.as_ref(),
            country
                .attribute
                .map_or("the default region".to_owned(), |a| format!("from {a}"))
        );
    }
    for (scope, entry) in &t.rejected {
        let _ = writeln!(out, "  rejected {}{}", entry.dn(), in_scope(lookup, *scope));
        let Some((phone, attributes)) = lookup.scope_rules(*scope) else {
            continue;
        };
        for (attr, value, keys) in phone_values(entry, phone, attributes) {
            let _ = writeln!(out, "      {attr}: {value:?} -> {keys}");
        }
    }
}

/// ` (scope NAME)` for a named scope, else nothing.
fn in_scope(lookup: &Lookup, scope: usize) -> String {
    lookup
        .directory()
        .scope_name(scope)
        .map(|name| format!(" (scope {name})"))
        .unwrap_or_default()
}

/// Each phone value of an entry with the numbers it normalises to, and the country its
/// national values were read in.
pub fn phone_values(
    entry: &Entry,
    phone: &PhoneNormalizer,
    attributes: &[String],
) -> Vec<(String, String, String)> {
    let country = phone.entry_country(|a| entry.values(a).next());
    let read_in = match country.attribute {
        Some(attr) => format!("read in {} (from {attr})", country.region.as_ref()),
        None => format!("read in {} (default region)", country.region.as_ref()),
    };
    let mut rows = Vec::new();
    for attr in attributes {
        for value in entry.values(attr) {
            let keys: Vec<String> = phone
                .readings_in(value, country.region)
                .iter()
                .map(|(k, how)| format!("{k} ({how})"))
                .collect();
            let keys = if keys.is_empty() {
                "no number".to_owned()
            } else {
                format!("{}; {read_in}", keys.join(", "))
            };
            rows.push((attr.clone(), value.to_owned(), keys));
        }
    }
    rows
}
