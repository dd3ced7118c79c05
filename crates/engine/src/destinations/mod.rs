//! The destinations retl knows, one line each in [`destinations!`]: where a
//! destination file's `type:` is dispatched.
//!
//! Each line names a [`Kind`] (a destination crate's implementation) and
//! the variant that holds it; the macro makes [`Destination`] and
//! [`Delivery`] of them, and every dispatch the engine needs: reading a file
//! of a `type:`, the JSON Schemas, the healthcheck, and [`Visitor`], through
//! which a run works with any kind generically. The run itself
//! (`crate::run`) never names a destination.

use std::path::Path;
use std::time::Duration;

use retl_config::{Map, Node, Reader};
use retl_destination::{Kind, Report};

#[cfg(test)]
pub(crate) mod memory;

/// Work done with a destination of any kind and one of its activations'
/// deliveries (a run, a check of a mapping against a source).
pub(crate) trait Visitor<'a> {
    /// What the work gives.
    type Output;
    /// Does it with `destination` and `delivery`.
    fn visit<D: Kind>(self, destination: &'a D, delivery: &'a D::Delivery) -> Self::Output;
}

/// Makes [`Destination`], [`Delivery`] and their dispatch from a list of
/// `Variant(KindType)` lines (attributes such as `#[cfg(test)]` allowed).
macro_rules! destinations {
    ($( $(#[$attr:meta])* $variant:ident($kind:ty), )*) => {
        /// A destination: one destination file, of one of the known `type:`s.
        // Only the test-only memory destination is much smaller than the others.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum Destination {
            $( $(#[$attr])* #[doc = concat!("A destination of `", stringify!($kind), "`.")] $variant($kind), )*
        }

        /// What an activation sends through its destination: its `target:`
        /// and `mapping:`, read by the destination's crate.
        // Only the test-only memory destination is much smaller than the others.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum Delivery {
            $( $(#[$attr])* #[doc = concat!("Through a destination of `", stringify!($kind), "`.")] $variant(<$kind as Kind>::Delivery), )*
        }

        /// The `type:` values a destination may have.
        // `vec![]` cannot leave out a line under `#[cfg]`.
        #[allow(clippy::vec_init_then_push)]
        pub fn types() -> Vec<&'static str> {
            let mut types = Vec::new();
            $( $(#[$attr])* types.push(<$kind as Kind>::TYPE); )*
            types
        }

        /// Reads a destination file whose `type:` is `kind` (one of [`types`]).
        pub(crate) fn read(
            kind: &str,
            r: &mut Reader<'_>,
            doc: &Node<'_>,
            name: String,
            file: &Path,
        ) -> Option<Destination> {
            $( $(#[$attr])*
            if kind == <$kind as Kind>::TYPE {
                return <$kind as Kind>::read(r, doc, name, file).map(Destination::$variant);
            } )*
            unreachable!("destination type `{kind}` was checked against types()")
        }

        /// The JSON Schemas of a destination file, an activation's `target:`
        /// and its `mapping:`, one per type.
        pub(crate) fn schemas() -> [Vec<serde_json::Value>; 3] {
            let mut schemas = [Vec::new(), Vec::new(), Vec::new()];
            $( $(#[$attr])* {
                schemas[0].push(<$kind as Kind>::schema());
                schemas[1].push(<$kind as Kind>::target_schema());
                schemas[2].push(<$kind as Kind>::mapping_schema());
            } )*
            schemas
        }

        impl Destination {
            /// Its name.
            pub fn name(&self) -> &str {
                match self { $( $(#[$attr])* Destination::$variant(d) => d.name(), )* }
            }

            /// Its `type:`.
            pub fn type_name(&self) -> &'static str {
                match self { $( $(#[$attr])* Destination::$variant(_) => <$kind as Kind>::TYPE, )* }
            }

            /// The file it came from.
            pub fn file(&self) -> &Path {
                match self { $( $(#[$attr])* Destination::$variant(d) => d.file(), )* }
            }

            /// Its `limits:`, for all its activations.
            pub fn limits(&self) -> retl_config::limits::Limits {
                match self { $( $(#[$attr])* Destination::$variant(d) => d.limits(), )* }
            }

            /// How long one request to it may take.
            pub fn request_timeout(&self) -> Duration {
                match self { $( $(#[$attr])* Destination::$variant(d) => d.request_timeout(), )* }
            }

            /// Its `dedupe.within`, across its activations.
            pub fn dedupe(&self) -> Option<Duration> {
                match self { $( $(#[$attr])* Destination::$variant(d) => d.dedupe(), )* }
            }

            /// How long `requests` requests take at its pacing.
            pub fn estimate(&self, requests: u64) -> Duration {
                match self { $( $(#[$attr])* Destination::$variant(d) => d.estimate(requests), )* }
            }

            /// The destination as its own kind `D`, if it is one.
            pub fn get<D: Kind>(&self) -> Option<&D> {
                match self {
                    $( $(#[$attr])* Destination::$variant(d) => (d as &dyn std::any::Any).downcast_ref::<D>(), )*
                }
            }

            /// Reads an activation's `target:` and `mapping:` for this destination.
            pub(crate) fn read_delivery(
                &self,
                r: &mut Reader<'_>,
                activation: &Map<'_, '_>,
                file: &Path,
                writeback: bool,
            ) -> Option<Delivery> {
                match self {
                    $( $(#[$attr])* Destination::$variant(d) => d
                        .read_delivery(r, activation, file, writeback)
                        .map(Delivery::$variant), )*
                }
            }

            /// `retl check`'s healthcheck, for the activations whose
            /// deliveries are `deliveries`.
            // With one kind, the arm that skips another's delivery is unreachable.
            #[allow(unreachable_patterns)]
            pub async fn check(&self, deliveries: &[&Delivery]) -> Report {
                match self {
                    $( $(#[$attr])* Destination::$variant(d) => {
                        let mine: Vec<_> = deliveries
                            .iter()
                            .filter_map(|x| match x {
                                Delivery::$variant(x) => Some(x),
                                _ => None,
                            })
                            .collect();
                        d.check(&mine).await
                    } )*
                }
            }

            /// `visitor`'s work with this destination and `delivery`;
            /// `None` when `delivery` was read for another type.
            // With one kind, the arm of a mismatched pair is unreachable.
            #[allow(unreachable_patterns)]
            pub(crate) fn visit<'a, V: Visitor<'a>>(
                &'a self,
                delivery: &'a Delivery,
                visitor: V,
            ) -> Option<V::Output> {
                match (self, delivery) {
                    $( $(#[$attr])* (Destination::$variant(d), Delivery::$variant(x)) => {
                        Some(visitor.visit(d, x))
                    } )*
                    _ => None,
                }
            }
        }

        impl Delivery {
            /// The source columns it reads, each once, in mapping order.
            pub fn mapped_columns(&self) -> Vec<&str> {
                let all = match self {
                    $( $(#[$attr])* Delivery::$variant(x) => <$kind as Kind>::mapped_columns(x), )*
                };
                let mut columns: Vec<&str> = Vec::new();
                for column in all {
                    if !columns.contains(&column) {
                        columns.push(column);
                    }
                }
                columns
            }

            /// The primary key when the source names none.
            pub fn default_key(&self) -> Vec<String> {
                match self { $( $(#[$attr])* Delivery::$variant(x) => <$kind as Kind>::default_key(x), )* }
            }

            /// What it creates per row, as a word.
            pub fn creates(&self) -> &'static str {
                match self { $( $(#[$attr])* Delivery::$variant(x) => <$kind as Kind>::creates(x), )* }
            }
        }
    };
}

// Adding a destination: its crate, its line here, the workspace Cargo.toml
// (see "Adding a destination" in docs/architecture.md).
destinations! {
    Trustpilot(retl_trustpilot::Destination),
    #[cfg(test)]
    Memory(memory::Memory),
}
