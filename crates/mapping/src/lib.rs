//! Maps one warehouse row to one Trustpilot email invitation.
//!
//! This crate owns the field catalogue ([`Field`]) and the precedence rules that
//! decide each value of an invitation:
//!
//! ```text
//! destination defaults  <  activation target  <  the row's mapped column
//! ```
//!
//! A mapped column that holds a value on a row wins for that row; a NULL or empty
//! cell falls back to the activation's `target`, then to the destination's
//! `defaults`. A value set nowhere stays unset, and the request body then omits
//! the field so that Trustpilot's account defaults apply.
//!
//! The crate does no IO. [`Mapper::new`] checks the mapping against the source's
//! Arrow schema once (every mapped column must exist); [`Mapper::map_row`] then
//! turns a row into an [`Invitation`] or a [`Rejection`] that names the field,
//! the column and what is wrong, so the row can be recorded as `rejected` and the
//! run can go on.

mod error;
mod field;
mod mapper;
mod settings;
mod value;

pub use error::{Error, Result};
pub use field::Field;
pub use mapper::{Invitation, Mapper, ProductBlock, Rejection, ServiceBlock};
pub use settings::{InvitationType, ProductSettings, ServiceSettings, Settings};
pub use value::{CellError, cell_text, parse_send_time};
