//! `ctiport export` filter options → the profile selection the sources apply and the
//! [`Filter`] the mapping thread applies. Mistakes here are usage errors (exit 2).

use ctiport_fetch::EnrichOptions;
use ctiport_model::graph::{IndicatorSource, ProfileKind};
use ctiport_model::selection::ProfileSelection;
use ctiport_transform::{ArtifactTypeName, Filter, FilterOptions, Mappings, parse_since};

use crate::args::{FilterArgs, KindArg, SourceArg};

/// `--kind`, `--profile`.
pub fn selection(args: &FilterArgs) -> ProfileSelection {
    ProfileSelection {
        kind: args.kind.map(|kind| match kind {
            KindArg::Actor => ProfileKind::Actor,
            KindArg::Tool => ProfileKind::Tool,
        }),
        ids: args.profiles.clone(),
    }
}

/// Every filter option, checked.
pub fn filter(
    args: &FilterArgs,
    enrich: &EnrichOptions,
    mappings: &Mappings,
) -> Result<Filter, String> {
    if let Some(id) = args.profiles.iter().find(|id| id.trim().is_empty()) {
        return Err(format!("--profile needs a profile id, not '{id}'"));
    }
    if args.min_reputation.is_some() && !enrich.reputation {
        return Err(
            "--min-reputation needs reputation scores: add --enrich reputation (or --enrich hosts,reputation)"
                .into(),
        );
    }
    let artifact_types = args
        .artifact_types
        .iter()
        .map(|name| ArtifactTypeName::parse(name, mappings))
        .collect::<Result<Vec<_>, _>>()?;
    let seen_since = args.seen_since.as_deref().map(parse_since).transpose()?;
    let mut sources = Vec::new();
    for source in &args.sources {
        let source = match source {
            SourceArg::Microsoft => IndicatorSource::Microsoft,
            SourceArg::Osint => IndicatorSource::Osint,
            SourceArg::Public => IndicatorSource::Public,
        };
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    Ok(Filter::new(
        FilterOptions {
            profiles: selection(args),
            sources,
            artifact_types,
            seen_since,
            min_reputation: args.min_reputation,
        },
        mappings,
    ))
}
