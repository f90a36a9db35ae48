//! Positioned errors: `PATH:LINE:COL: error: MESSAGE` (ARCHITECTURE.md §6).

use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Makes the input unusable.
    Error,
    /// Worth knowing; the input is still used.
    Warning,
}

/// One finding about one place in one file. Line and column are 1-based; 0 means
/// the place is unknown (the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub path: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one line.
    pub message: String,
}

impl Diagnostic {
    /// An error at a parser location.
    pub fn error_at(path: &Path, at: Location, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            line: at.line(),
            column: at.column(),
            severity: Severity::Error,
            message: message.into(),
        }
    }

    /// An error about a whole file.
    pub fn error_in_file(path: &Path, message: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), line: 0, column: 0, severity: Severity::Error, message: message.into() }
    }

    /// The same finding as a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn sort_key(&self) -> (&Path, u64, u64, &str) {
        (&self.path, self.line, self.column, &self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            write!(f, "{}: {severity}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {severity}: {}", self.path.display(), self.line, self.column, self.message)
        }
    }
}

/// Sorts findings by file and position, dropping exact duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diagnostics.dedup();
}

/// Collects findings about one file; semantic checks push into it.
#[derive(Debug)]
pub struct Findings<'p> {
    path: &'p Path,
    /// Fallback position for values that were defaulted (they have no location).
    fallback: Location,
    /// The findings so far.
    pub list: Vec<Diagnostic>,
}

impl<'p> Findings<'p> {
    /// Starts collecting for `path`; `fallback` is used for values with no position.
    pub fn new(path: &'p Path, fallback: Location) -> Self {
        Self { path, fallback, list: Vec::new() }
    }

    /// Records an error at a spanned value (its own position, or the fallback).
    pub fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.error_at(at.referenced, message);
    }

    /// Records an error at a location (the fallback when it is unknown).
    pub fn error_at(&mut self, at: Location, message: impl Into<String>) {
        let at = if at.line() == 0 { self.fallback } else { at };
        self.list.push(Diagnostic::error_at(self.path, at, message));
    }
}
