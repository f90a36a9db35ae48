//! Failover policies (ARCHITECTURE.md §6): the model, how it is read from YAML with
//! positioned errors, and the semantic checks.

pub mod diagnostic;
pub mod duration;
pub mod load;
pub mod model;
pub mod reference;
pub mod source;
pub mod validate;

pub use diagnostic::Diagnostic;
pub use load::{Loaded, LoadedPolicy, load, load_text, policy_hash};
pub use model::FailoverPolicy;
