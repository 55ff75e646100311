//! Rust errors as Python exceptions, and the one way every binding runs Rust code: without
//! the GIL, with panics caught.
//!
//! The exception classes live in `trustformers/exceptions.py`: each derives from
//! `TrustformersError` and from the builtin Python users catch for that kind of failure
//! (`FileNotFoundError`, `OSError`, `ValueError`), which one class in PyO3 cannot express.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::panic::{catch_unwind, AssertUnwindSafe};
use trustformers::core::ErrorKind;
use trustformers::Error;

/// The exception class `name` of `trustformers.exceptions`.
fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(py
        .import("trustformers.exceptions")?
        .getattr(name)?
        .cast_into::<PyType>()?)
}

/// An exception of class `name` with `message`; a `RuntimeError` if the class cannot be
/// found (the Python half of the package is missing).
pub fn raise(py: Python<'_>, name: &str, message: String) -> PyErr {
    match class(py, name) {
        Ok(ty) => PyErr::from_type(ty, message),
        Err(_) => PyRuntimeError::new_err(message),
    }
}

/// Which exception class a Rust error becomes: files that are missing are
/// `FileNotFoundError`s, files that cannot be read or parsed `OSError`s (as transformers
/// raises for a bad checkpoint), bad arguments and configurations `ValueError`s, and failures
/// of the engine itself the base `TrustformersError`.
fn class_of(err: &Error) -> &'static str {
    match err.kind() {
        ErrorKind::NotFound => "FileNotFound",
        ErrorKind::BadFile => "CheckpointError",
        ErrorKind::InvalidInput => "InvalidArgument",
        ErrorKind::Internal => "TrustformersError",
    }
}

/// `err` as the Python exception of its kind, with the Rust message.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    raise(py, class_of(&err), err.to_string())
}

/// A `ValueError` (a `trustformers.exceptions.InvalidArgument`) for a bad argument.
pub fn invalid(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, "InvalidArgument", message.into())
}

/// What a Rust call can end in besides its value: an error of the library, or an exception
/// raised by Python code it called back (a streamer, Ctrl-C).
pub enum Failure {
    Rust(Error),
    Python(PyErr),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Rust(e)
    }
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Self::Python(e)
    }
}

impl From<candle_core::Error> for Failure {
    fn from(e: candle_core::Error) -> Self {
        Self::Rust(e.into())
    }
}

/// Runs `f` with the GIL released, so that other Python threads run meanwhile, turning its
/// error into the fitting exception and a panic (a bug) into a `TrustformersError` instead of
/// PyO3's `PanicException`.
pub fn detach<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, Failure> + Send,
{
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Failure::Rust(e))) => Err(to_py(py, e)),
        Ok(Err(Failure::Python(e))) => Err(e),
        Err(panic) => {
            let what = trustformers::core::panic_message(&*panic);
            Err(raise(
                py,
                "TrustformersError",
                format!("internal error (please report it): {what}"),
            ))
        }
    }
}
