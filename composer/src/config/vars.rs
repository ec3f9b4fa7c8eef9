//! `${NAME}` expansion in string values.
//!
//! Every scalar value and mapping key of every file is expanded right after it
//! is parsed, before layers are merged, so that `layers:` entries and sizes
//! can use variables too. `${NAME}` takes its value from `--var NAME=...`
//! first, then from the environment when the caller allows it; `$$` is a
//! literal `$`; any other `$` is kept as written (so `$HOME` in an inline
//! script stays for the shell). An unset or malformed variable is a diagnostic
//! and the value becomes [`Value::Invalid`], so later checks stay quiet about
//! it. Rejected: recursive expansion (a value's own `${...}` is not expanded
//! again) and `${NAME:-default}` shell forms (a missing build variable should
//! be loud, not silently defaulted).

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
        if !text.contains('$') {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let Some(end) = r.find('}') else {
                    return Err((
                        format!("\"{text}\" has an unclosed '${{'"),
                        "close it as ${NAME}, or write $$ for a literal '$'".to_string(),
                    ));
                };
                let name = &r[..end];
                if !is_var_name(name) {
                    return Err((
                        format!("\"{text}\" uses '${{{name}}}', which is not a variable name"),
                        "variable names are letters, digits and '_'; write $$ for a literal '$'"
                            .to_string(),
                    ));
                }
                match self.lookup(name) {
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
        match &mut node.value {
            Value::Scalar { text, .. } => match self.expand(text) {
                Ok(new) => *text = new,
                Err((message, help)) => {
                    diags.push(
                        Diagnostic::new(node.span.clone(), node.path.clone(), message).help(help),
                    );
                    node.value = Value::Invalid;
                }
            },
            Value::Seq(items) => items.iter_mut().for_each(|n| self.expand_tree(n, diags)),
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
                    self.expand_tree(n, diags);
                }
            }
            Value::Null | Value::Invalid => {}
        }
    }
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
}
