//! The EventReport of a profile's main event: the profile's description and tradecraft as
//! Markdown, under a short fact list (kind, first activity, aliases, origin, targets).
//!
//! The report `content` column is utf8mb4 (reference `misp.md` §1.1), so the text is kept verbatim
//! (emoji included); only line endings are normalized. Its `name` is a utf8mb3 varchar(255).

use ctiport_model::graph::{IntelProfile, ProfileKind};

use super::text::{date, single_line, unix_newlines};

/// The report's name (≤ 255 characters, utf8mb3-safe).
pub fn name(title: &str) -> String {
    single_line(&format!("{title} (MDTI intel profile)"), 255)
}

/// The report's Markdown content.
pub fn content(profile: &IntelProfile, title: &str) -> String {
    let mut out = format!("# {}\n\n", one_line(title));
    let kind = match &profile.kind {
        ProfileKind::Actor => "threat actor".to_owned(),
        ProfileKind::Tool => "tool".to_owned(),
        ProfileKind::Other(other) => other.clone(),
    };
    out.push_str(&format!("- **Kind:** {}\n", one_line(&kind)));
    if let Some(first_active) = profile.first_active {
        out.push_str(&format!("- **First active:** {}\n", date(first_active)));
    }
    let aliases: Vec<&str> = profile
        .aliases
        .iter()
        .map(String::as_str)
        .filter(|a| *a != title)
        .collect();
    if !aliases.is_empty() {
        out.push_str(&format!("- **Aliases:** {}\n", list(&aliases)));
    }
    let origins: Vec<String> = profile
        .countries_or_regions
        .iter()
        .map(|c| match (&c.label, &c.code) {
            (Some(label), Some(code)) => format!("{label} ({code})"),
            (Some(label), None) => label.clone(),
            (None, Some(code)) => code.clone(),
            (None, None) => String::new(),
        })
        .filter(|o| !o.is_empty())
        .collect();
    if !origins.is_empty() {
        let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
        out.push_str(&format!("- **Origin:** {}\n", list(&origins)));
    }
    let targets: Vec<&str> = profile.targets.iter().map(String::as_str).collect();
    if !targets.is_empty() {
        out.push_str(&format!("- **Targets:** {}\n", list(&targets)));
    }
    out.push_str(&format!(
        "- **Source:** Microsoft Defender Threat Intelligence, intel profile `{}`\n",
        profile.id.replace('`', "'")
    ));
    // As in the STIX mapping: the summary is the opening of the description, used only without one.
    if let Some(text) = profile.description.as_ref().or(profile.summary.as_ref()) {
        out.push_str("\n## Description\n\n");
        out.push_str(unix_newlines(&text.content).trim_end());
        out.push('\n');
    }
    if let Some(text) = &profile.tradecraft {
        out.push_str("\n## Tradecraft\n\n");
        out.push_str(unix_newlines(&text.content).trim_end());
        out.push('\n');
    }
    out
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn list(items: &[&str]) -> String {
    let mut seen = Vec::new();
    for item in items {
        let item = one_line(item);
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen.join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use ctiport_model::graph::{CountryOrRegion, FormattedContent};
    use ctiport_model::timestamp::Timestamp;

    #[test]
    fn the_report_carries_description_tradecraft_and_facts() {
        let profile = IntelProfile {
            id: "abc".into(),
            kind: ProfileKind::Actor,
            title: Some("Aqua Blizzard".into()),
            first_active: Timestamp::parse("2020-02-24T00:00:00Z"),
            aliases: vec!["Aqua Blizzard".into(), "ACTINIUM".into(), "ACTINIUM".into()],
            targets: vec!["Government".into()],
            countries_or_regions: vec![CountryOrRegion {
                code: Some("RU".into()),
                label: Some("Russia".into()),
            }],
            summary: Some(FormattedContent {
                content: "Short.".into(),
                format: "text".into(),
            }),
            description: Some(FormattedContent {
                content: "## Snapshot\r\nLong 🦊.".into(),
                format: "markdown".into(),
            }),
            tradecraft: Some(FormattedContent {
                content: "Spear-phishing.".into(),
                format: "markdown".into(),
            }),
        };
        let text = content(&profile, "Aqua Blizzard");
        assert!(text.starts_with("# Aqua Blizzard\n"), "{text}");
        assert!(text.contains("- **Aliases:** ACTINIUM\n"), "{text}");
        assert!(text.contains("Russia (RU)"), "{text}");
        assert!(text.contains("## Snapshot\nLong 🦊."), "{text}");
        assert!(!text.contains("Short."), "{text}");
        assert!(
            text.contains("## Tradecraft\n\nSpear-phishing.\n"),
            "{text}"
        );
        assert_eq!(
            name("Aqua Blizzard 🦊"),
            "Aqua Blizzard ? (MDTI intel profile)"
        );
    }
}
