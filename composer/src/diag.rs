//! Diagnostics: problems in a user's description, as values.
//!
//! Every problem names the file, the line and column, the key path as the
//! user wrote it (`partitions[2].size`), what is wrong with the value and how
//! to fix it. The config loader, the validator and the planner all return
//! `Vec<Diagnostic>` so that every problem is reported at once; `main` prints
//! them and exits with status 2. Tests match on the rendered text.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a value stands in a description file (1-based line and column).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// The file the value was read from (a layer file has its own path).
    pub file: Arc<PathBuf>,
    pub line: u32,
    pub column: u32,
}

impl Span {
    pub fn new(file: Arc<PathBuf>, line: u32, column: u32) -> Self {
        Span { file, line, column }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// One problem with a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Span,
    /// The key path as written, e.g. `partitions[2].size`; empty for the whole file.
    pub key: String,
    /// What is wrong, including the offending value, e.g. `"12QB" is not a size`.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, key: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            key: key.into(),
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `board.yaml:14:9: partitions[2].size: "12QB" is not a size` and, on the
    /// next line, `  help: write a number with a unit, e.g. "64MiB"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.span)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// All problems found in a description: the error type of `validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// One problem with a file named on the command line (`--key`, a
    /// bundle, an image to flash): located at the file, no line.
    pub fn about_file(
        path: &std::path::Path,
        key: &str,
        message: impl Into<String>,
        help: &str,
    ) -> Diagnostics {
        Diagnostics(vec![Diagnostic::new(
            Span::new(Arc::new(path.to_path_buf()), 0, 0),
            key,
            message,
        )
        .help(help)])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "error: {d}")?;
        }
        let files: std::collections::BTreeSet<_> = self
            .0
            .iter()
            .map(|d| d.span.file.display().to_string())
            .collect();
        let files: Vec<_> = files.into_iter().collect();
        let n = self.0.len();
        write!(
            f,
            "error: {n} problem{} in {}; nothing was written",
            if n == 1 { "" } else { "s" },
            files.join(", ")
        )
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_key_value_and_help() {
        let span = Span::new(Arc::new(PathBuf::from("board.yaml")), 14, 9);
        let d = Diagnostic::new(span, "partitions[2].size", "\"12QB\" is not a size")
            .help("write a number with a unit, e.g. \"64MiB\" or \"1G\"");
        assert_eq!(
            d.to_string(),
            "board.yaml:14:9: partitions[2].size: \"12QB\" is not a size\n  help: write a number with a unit, e.g. \"64MiB\" or \"1G\""
        );
        let all = Diagnostics(vec![d.clone(), d]);
        assert!(all
            .to_string()
            .ends_with("error: 2 problems in board.yaml; nothing was written"));
    }
}
