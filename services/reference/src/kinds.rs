//! The kinds of site the register keeps (data, not code): `data/site-kinds.csv`. The registry
//! refuses a kind not listed; the written report names kinds by their Vietnamese names.

use einfo_proto::registry::v1 as pb;

/// The kinds catalogue.
#[derive(Clone, Debug)]
pub struct Kinds(Vec<pb::SiteKind>);

impl Kinds {
    /// The catalogue shipped with the registry.
    pub fn bundled() -> Self {
        // The file ships inside the crate; the test below proves it parses.
        Self::from_csv(include_str!("../data/site-kinds.csv")).expect("bundled site kinds parse")
    }

    /// Parses a catalogue: `code,name_vi,name_en,processing_working_days`.
    pub fn from_csv(data: &str) -> anyhow::Result<Self> {
        let mut out = Vec::new();
        for (i, r) in csv::Reader::from_reader(data.as_bytes()).records().enumerate() {
            let r = r?;
            let line = i + 2;
            anyhow::ensure!(r.len() == 4, "line {line}: expected 4 columns");
            out.push(pb::SiteKind {
                code: r[0].trim().to_owned(),
                name_vi: r[1].trim().to_owned(),
                name_en: r[2].trim().to_owned(),
                processing_working_days: r[3]
                    .trim()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("line {line}: processing_working_days: {e}"))?,
            });
        }
        Ok(Self(out))
    }

    /// A kind by code.
    pub fn get(&self, code: &str) -> Option<&pb::SiteKind> {
        self.0.iter().find(|k| k.code == code)
    }

    /// Every code.
    pub fn codes(&self) -> Vec<&str> {
        self.0.iter().map(|k| k.code.as_str()).collect()
    }

    /// Every kind.
    pub fn all(&self) -> &[pb::SiteKind] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_catalogue_has_general_websites_and_social_networks() {
        let k = super::Kinds::bundled();
        assert_eq!(k.codes(), ["general-website", "social-network"]);
    }
}
