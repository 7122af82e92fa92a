//! The key layout: every key of one semaphore shares the hash tag `{NAME}`
//! (NAME with its one leading slash), so that a cluster keeps them in one
//! slot and a script may touch them all.

/// What every key of namedipc starts with.
pub(crate) const PREFIX: &str = "namedipc:{";
/// The end of a semaphore's meta key, after the name.
pub(crate) const META_SUFFIX: &str = "}:meta";
/// The SCAN pattern that finds every semaphore's meta key.
pub(crate) const META_PATTERN: &str = "namedipc:{*}:meta";

/// The keys of one semaphore, in the order the scripts take them.
#[derive(Debug, Clone)]
pub(crate) struct Keys([String; 6]);

impl Keys {
    /// The keys of the semaphore `name` (canonical: one leading slash).
    pub(crate) fn of(name: &str) -> Self {
        let key = |part: &str| format!("{PREFIX}{name}}}:{part}");
        Self([
            key("meta"),
            key("holders"),
            key("deadlines"),
            key("free"),
            key("waiters"),
            key("wake"),
        ])
    }

    /// All of them, for a script invocation.
    pub(crate) fn all(&self) -> &[String; 6] {
        &self.0
    }

    /// The list waiters block on.
    pub(crate) fn wake(&self) -> &str {
        &self.0[5]
    }
}

/// The name of the semaphore whose meta key is `key`, if it is one.
pub(crate) fn name_of_meta_key(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX)?
        .strip_suffix(META_SUFFIX)
        .filter(|name| name.starts_with('/') && name.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_name_as_hash_tag() {
        let keys = Keys::of("/gpu");
        assert_eq!(keys.all()[0], "namedipc:{/gpu}:meta");
        assert_eq!(keys.wake(), "namedipc:{/gpu}:wake");
        assert!(keys.all().iter().all(|k| k.starts_with("namedipc:{/gpu}:")));
        assert_eq!(name_of_meta_key("namedipc:{/gpu}:meta"), Some("/gpu"));
        assert_eq!(name_of_meta_key("namedipc:{/a}b}:meta"), Some("/a}b"));
        assert_eq!(name_of_meta_key("namedipc:{/gpu}:free"), None);
        assert_eq!(name_of_meta_key("other"), None);
    }
}
