//! A synthetic directory of people whose numbers use the mixed formats real directories hold.

use std::fmt::Write as _;

const AREAS: &[&str] = &["2", "3", "4", "8", "9", "72", "73", "77"];
const MOBILES: &[&str] = &["50", "52", "53", "54", "58"];
const GIVEN: &[&str] = &[
    "Dana",
    "אבי",
    "Noa",
    "יוסי",
    "Michal",
    "עומר",
    "Tamar",
    "ליאור",
    "Shira",
    "רות",
];
const FAMILY: &[&str] = &[
    "Levi",
    "כהן",
    "Mizrahi",
    "פרץ",
    "Biton",
    "פרידמן",
    "Shapiro",
    "חדד",
    "Katz",
    "גולן",
];
const COMPANIES: &[&str] = &["Voicenter", "Acme Israel", "Globex", "Initech", "Umbrella"];

/// Person `i`'s office number: area code (without trunk 0) and subscriber number.
fn office(i: usize) -> (&'static str, String) {
    (AREAS[i % AREAS.len()], format!("{}", 1_000_000 + i))
}

/// The office number written the way person `i`'s record writes it.
fn written(i: usize) -> String {
    let (a, s) = office(i);
    let (s1, s2) = s.split_at(3);
    match i % 7 {
        0 => format!("0{a}-{s}"),
        1 => format!("+972 {a}-{s1}-{s2}"),
        2 => format!("(0{a}) {s1} {s2}"),
        3 => format!("+972 (0){a} {s1} {s2}"),
        4 => format!("972 {a} {s}"),
        5 => format!("0{a}.{s1}.{s2}"),
        _ => format!("0{a} {s} ext {}", i % 90 + 10),
    }
}

/// When the people were last changed, as a directory in use has them: long ago (past the
/// clock skew margin, so a `modifyTimestamp` poll's boundary second has settled).
const LAST_CHANGED: &str = "20260101000000Z";

/// LDIF for `people` people under ou=people, dc=example, dc=com.
pub fn ldif(people: usize) -> String {
    let mut out = String::with_capacity(people * 300);
    out.push_str(
        "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=services,dc=example,dc=com\nobjectClass: organizationalUnit\nou: services\n\n",
    );
    let _ = write!(
        out,
        "dn: {}\nobjectClass: person\ncn: popup\nsn: popup\nuserPassword: {}\n\n",
        super::common::BIND_DN,
        super::common::BIND_PASSWORD
    );
    for i in 0..people {
        let given = GIVEN[i % GIVEN.len()];
        let family = FAMILY[(i / GIVEN.len()) % FAMILY.len()];
        let name = format!("{given} {family} {i}");
        let _ = write!(
            out,
            "dn: uid=p{i},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: p{i}\n\
             cn: p{i}\nsn:: {family_b64}\ndisplayName:: {name_b64}\no: {company}\n\
             telephoneNumber: {phone}\nmodifyTimestamp: {LAST_CHANGED}\n",
            family_b64 = b64(family),
            name_b64 = b64(&name),
            company = COMPANIES[i % COMPANIES.len()],
            phone = written(i),
        );
        if i % 2 == 0 {
            let _ = writeln!(
                out,
                "mobile: 0{}-{}",
                MOBILES[i % MOBILES.len()],
                3_000_000 + i
            );
        }
        out.push('\n');
    }
    out
}

/// Numbers of `count` people spread over the directory, in national form as Voicenter sends.
pub fn callers(people: usize, count: usize) -> Vec<String> {
    let step = (people / count).max(1);
    (0..people)
        .step_by(step)
        .take(count)
        .map(|i| {
            let (a, s) = office(i);
            format!("0{a}{s}")
        })
        .collect()
}

/// The requests of `count` calls from as many callers spread over the directory, as Voicenter
/// sends them: the caller's number ringing at three extensions of a ring group, then answered
/// at one and hung up.
pub fn calls(people: usize, count: usize) -> Vec<String> {
    let phases = [
        ("agent-1", "Ringing"),
        ("agent-2", "Ringing"),
        ("agent-3", "Ringing"),
        ("agent-2", "Answer"),
        ("agent-2", "Hangup"),
    ];
    callers(people, count)
        .into_iter()
        .enumerate()
        .flat_map(|(call, number)| {
            phases.map(|(agent, state)| {
                format!(
                    "/popup?phone={number}&ivrid=call-{call}&extenUser={agent}&statusCall={state}"
                )
            })
        })
        .collect()
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
