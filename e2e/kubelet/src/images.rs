//! Image names to image trees: `e2e/images.yaml` maps glob patterns (matched against the whole image
//! string, first match wins) to directories under the images cache whose `usr/` is layered over the
//! host's `/usr` in every container of that image.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Rule {
    pattern: String,
    tree: String,
    #[serde(flatten)]
    defaults: ImageDefaults,
}

/// The image's own `ENTRYPOINT` and `CMD`, used when a container gives no `command` (and no `args`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ImageDefaults {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
}

/// The image table of one kubelet.
#[derive(Debug)]
pub struct Images {
    rules: Vec<Rule>,
    dir: PathBuf,
}

impl Images {
    pub fn load(table: &Path, dir: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(table).with_context(|| format!("reading {}", table.display()))?;
        let rules: Vec<Rule> =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", table.display()))?;
        Ok(Self {
            rules,
            dir: dir.to_path_buf(),
        })
    }

    /// The tree of `image`, or `None` when no pattern matches (the pod gets `ErrImagePull`). A matching
    /// pattern whose tree is missing also yields its path: the runtime reports it as not pullable.
    pub fn resolve(&self, image: &str) -> Option<(PathBuf, ImageDefaults)> {
        self.rules
            .iter()
            .find(|rule| glob_match::glob_match(&rule.pattern, image))
            .map(|rule| (self.dir.join(&rule.tree), rule.defaults.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> Images {
        let rules = serde_saphyr::from_str(
            "- {pattern: 'valkey/valkey:8.*', tree: valkey-8.1, cmd: [valkey-server]}\n- {pattern: 'valkey/valkey:9.*', tree: valkey-9.1}\n- {pattern: 'cnredis/cnredis:*', tree: cnredis}\n",
        )
        .unwrap();
        Images {
            rules,
            dir: PathBuf::from("/cache/images"),
        }
    }

    #[test]
    fn images_resolve_by_first_matching_pattern() {
        let images = images();
        let tree = |image: &str| images.resolve(image).map(|(tree, _)| tree);
        assert_eq!(
            tree("valkey/valkey:8.1.4"),
            Some(PathBuf::from("/cache/images/valkey-8.1"))
        );
        assert_eq!(
            tree("valkey/valkey:9.0.0"),
            Some(PathBuf::from("/cache/images/valkey-9.1"))
        );
        assert_eq!(
            tree("cnredis/cnredis:0.1.0"),
            Some(PathBuf::from("/cache/images/cnredis"))
        );
        assert_eq!(
            images.resolve("valkey/valkey:8.1.4").unwrap().1.cmd,
            vec!["valkey-server"]
        );
    }

    #[test]
    fn unmapped_images_do_not_resolve() {
        let images = images();
        assert_eq!(images.resolve("valkey/valkey:7.2"), None);
        assert_eq!(images.resolve("docker.io/library/nginx:latest"), None);
    }
}
