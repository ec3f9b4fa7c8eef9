//! `${NAME}` expansion in string values.
//!
//! Every scalar value and mapping key is expanded: the `layers:` entries of
//! each file as soon as it is parsed (they name the files to read next), the
//! rest once layers are merged, so that a value replaced by a later file is
//! never expanded (and need not have its variables set). `${NAME}` takes its value from `--var NAME=...`
//! first, then from the environment when the caller allows it; `$$` is a
//! literal `$`; any other `$` is kept as written (so `$HOME` in an inline
//! script stays for the shell). An unset or malformed variable is a diagnostic
//! and the value becomes [`Value::Invalid`], so later checks stay quiet about
//! it. Rejected: recursive expansion (a value's own `${...}` is not expanded
//! again) and `${NAME:-default}` shell forms (a missing build variable should
//! be loud, not silently defaulted).
//!
//! `${verity.NAME.KEY}` (a content's dm-verity values, e.g. its root hash)
//! is known only once that content is prepared: it is allowed only in the
//! `text:` of a file (`{ text: ... }`), where this pass keeps it and `$$`
//! as written (and doubles any `$` a variable's value brings in), and
//! [`expand_verity`] replaces them when the file is prepared. Rejected:
//! allowing it in any value (a path or a size cannot wait for preparing).

use super::yaml::{Node, Value};
use crate::diag::Diagnostic;
use std::collections::BTreeMap;

/// Where variable values come from.
pub struct Vars<'a> {
    pub vars: &'a BTreeMap<String, String>,
    pub use_env: bool,
}

impl Vars<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.vars.get(name) {
            return Some(v.clone());
        }
        if self.use_env {
            return std::env::var(name).ok();
        }
        None
    }

    /// Expands `text`; on failure returns the problem and its help.
    pub fn expand(&self, text: &str) -> Result<String, (String, String)> {
        self.expand_in(text, false)
    }

    /// Expands `text`; a file's `text:` (`deferred`) keeps `$$` and
    /// `${verity.NAME.KEY}` for [`expand_verity`].
    fn expand_in(&self, text: &str, deferred: bool) -> Result<String, (String, String)> {
        if !text.contains('$') {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push_str(if deferred { "$$" } else { "$" });
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let Some(end) = r.find('}') else {
                    return Err((
                        format!("\"{text}\" has an unclosed '${{'"),
                        "close it as ${NAME}, or write $$ for a literal '$'".to_string(),
                    ));
                };
                let name = &r[..end];
                if name.starts_with(VERITY_PREFIX) {
                    if !deferred {
                        return Err((
                            format!("\"{text}\" uses ${{{name}}}, which only a file's `text:` can use"),
                            "dm-verity values are known once the content is built: write them into a file as `{ text: \"...\" }`".to_string(),
                        ));
                    }
                    out.push_str(&rest[pos..pos + 3 + end]);
                    rest = &r[end + 1..];
                    continue;
                }
                if !is_var_name(name) {
                    return Err((
                        format!("\"{text}\" uses '${{{name}}}', which is not a variable name"),
                        "variable names are letters, digits and '_'; write $$ for a literal '$'"
                            .to_string(),
                    ));
                }
                match self.lookup(name) {
                    Some(v) if deferred => out.push_str(&v.replace('$', "$$")),
                    Some(v) => out.push_str(&v),
                    None => {
                        return Err((
                            format!("\"{text}\" uses ${{{name}}}, which is not set"),
                            format!("pass --var {name}=... or export {name}"),
                        ))
                    }
                }
                rest = &r[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Expands every scalar value under `node`, reporting problems into `diags`.
    pub fn expand_tree(&self, node: &mut Node, diags: &mut Vec<Diagnostic>) {
        self.expand_node(node, diags, false);
    }

    fn expand_node(&self, node: &mut Node, diags: &mut Vec<Diagnostic>, deferred: bool) {
        match &mut node.value {
            Value::Scalar { text, .. } => match self.expand_in(text, deferred) {
                Ok(new) => *text = new,
                Err((message, help)) => {
                    diags.push(
                        Diagnostic::new(node.span.clone(), node.path.clone(), message).help(help),
                    );
                    node.value = Value::Invalid;
                }
            },
            Value::Seq(items) => items
                .iter_mut()
                .for_each(|n| self.expand_node(n, diags, false)),
            Value::Map(entries) => {
                for (key, n) in entries.iter_mut() {
                    // Keys are expanded too: `files:` destinations may use
                    // variables (`/${KERNEL_IMAGETYPE}: ...`).
                    match self.expand(&key.text) {
                        Ok(new) => key.text = new,
                        Err((message, help)) => {
                            diags.push(
                                Diagnostic::new(key.span.clone(), n.path.clone(), message)
                                    .help(help),
                            );
                            n.value = Value::Invalid;
                            continue;
                        }
                    }
                    // A file's `{ text: ... }` (the only `text` key).
                    let deferred = key.text == "text";
                    self.expand_node(n, diags, deferred);
                }
            }
            Value::Null | Value::Invalid => {}
        }
    }
}

/// The prefix of the variables of dm-verity values: `${verity.NAME.KEY}`.
pub const VERITY_PREFIX: &str = "verity.";

/// One `${verity.NAME.KEY}` of a file's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerityRef<'t> {
    /// What was written between the braces.
    pub written: &'t str,
    /// The content's name.
    pub name: &'t str,
    pub key: &'t str,
}

/// Expands a file's text as the first pass kept it: `$$` becomes `$`,
/// `${verity.NAME.KEY}` what `value` returns for it.
pub fn expand_verity<'t, E>(
    text: &'t str,
    mut value: impl FnMut(&VerityRef<'t>) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let found = after.strip_prefix('{').and_then(|r| {
            let end = r.find('}')?;
            let written = &r[..end];
            let (name, key) = written.strip_prefix(VERITY_PREFIX)?.rsplit_once('.')?;
            Some((VerityRef { written, name, key }, &r[end + 1..]))
        });
        match found {
            Some((reference, r)) => {
                out.push_str(&value(&reference)?);
                rest = r;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Every `${verity.NAME.KEY}` of a file's text.
pub fn verity_refs(text: &str) -> Vec<VerityRef<'_>> {
    let mut refs = Vec::new();
    // Collects instead of replacing; the text is not kept.
    let _ = expand_verity::<std::convert::Infallible>(text, |r| {
        refs.push(*r);
        Ok(String::new())
    });
    refs
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("BINARIES_DIR".to_string(), "/out/images".to_string()),
            ("X".to_string(), "${Y}".to_string()),
        ])
    }

    #[test]
    fn expands_braced_names_and_dollar_dollar() {
        let v = vars();
        let e = Vars {
            vars: &v,
            use_env: false,
        };
        assert_eq!(
            e.expand("${BINARIES_DIR}/Image").unwrap(),
            "/out/images/Image"
        );
        assert_eq!(e.expand("cost $$5").unwrap(), "cost $5");
        assert_eq!(e.expand("echo $HOME").unwrap(), "echo $HOME");
        assert_eq!(
            e.expand("$$${X}").unwrap(),
            "$${Y}",
            "no recursive expansion"
        );
        assert_eq!(e.expand("end$").unwrap(), "end$");
    }

    #[test]
    fn unset_and_malformed_variables_are_errors() {
        let v = vars();
        let e = Vars {
            vars: &v,
            use_env: false,
        };
        assert_eq!(
            e.expand("${TARGET_DIR}/etc"),
            Err((
                "\"${TARGET_DIR}/etc\" uses ${TARGET_DIR}, which is not set".into(),
                "pass --var TARGET_DIR=... or export TARGET_DIR".into()
            ))
        );
        assert!(e.expand("${OPEN").unwrap_err().0.contains("unclosed"));
        assert!(e
            .expand("${A-B}")
            .unwrap_err()
            .0
            .contains("not a variable name"));
    }

    #[test]
    fn vars_win_over_the_environment_and_env_is_opt_in() {
        // PATH is set in every test environment.
        let mut v = BTreeMap::new();
        let without = Vars {
            vars: &v,
            use_env: false,
        };
        assert!(without.expand("${PATH}").is_err());
        let with = Vars {
            vars: &v,
            use_env: true,
        };
        assert!(with.expand("${PATH}").is_ok());
        v.insert("PATH".to_string(), "mine".to_string());
        let both = Vars {
            vars: &v,
            use_env: true,
        };
        assert_eq!(both.expand("${PATH}").unwrap(), "mine");
    }

    #[test]
    fn verity_values_wait_for_the_text_pass() {
        let v = BTreeMap::from([("DOLLAR".to_string(), "a$b".to_string())]);
        let e = Vars {
            vars: &v,
            use_env: false,
        };
        let kept = e
            .expand_in("r=${verity.root.roothash} $$ ${DOLLAR}", true)
            .unwrap();
        assert_eq!(kept, "r=${verity.root.roothash} $$ a$$b");
        assert_eq!(
            verity_refs(&kept),
            [VerityRef {
                written: "verity.root.roothash",
                name: "root",
                key: "roothash"
            }]
        );
        let done = expand_verity::<()>(&kept, |r| Ok(format!("<{}:{}>", r.name, r.key)));
        assert_eq!(done.unwrap(), "r=<root:roothash> $ a$b");
        // `$${verity...}` is a literal.
        assert_eq!(
            expand_verity::<()>("$${verity.a.b}", |_| Ok("x".into())).unwrap(),
            "${verity.a.b}"
        );
        assert!(e
            .expand("${verity.root.roothash}")
            .unwrap_err()
            .0
            .contains("only a file's `text:`"));
    }
}
