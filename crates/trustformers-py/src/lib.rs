//! `trustformers._trustformers`: the Rust half of the Python package. Each class wraps a
//! facade type (tokenizer, causal LM, encoder, task pipeline, sentence embedder); the Python
//! half (`python/trustformers/`) gives them transformers' and sentence-transformers' API.
//! Every call into Rust releases the GIL and catches panics ([`errors::detach`]).

mod arrays;
mod errors;
mod models;
mod pipelines;
mod tokenizer;
mod vision;

use pyo3::prelude::*;

/// Resolves a model name as the CLI does (directory, `.gguf` file, Hub id, known model),
/// fetching it when needed; returns the local path.
#[pyfunction]
fn resolve(py: Python<'_>, name: String) -> PyResult<String> {
    errors::detach(py, move || {
        Ok(trustformers::resolve_model(Some(&name))?
            .display()
            .to_string())
    })
}

#[pymodule]
fn _trustformers(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<tokenizer::PyTokenizer>()?;
    m.add_class::<models::PyCausalLM>()?;
    m.add_class::<models::PyEncoder>()?;
    m.add_class::<models::PySeq2SeqLM>()?;
    m.add_class::<models::PyCheckpoint>()?;
    m.add_class::<pipelines::PyPipeline>()?;
    m.add_class::<pipelines::PySentenceTransformer>()?;
    m.add_class::<vision::PyImageProcessor>()?;
    m.add_class::<vision::PyImageModel>()?;
    m.add_class::<vision::PyImageTextModel>()?;
    m.add_class::<vision::PyVisionLanguageProcessor>()?;
    m.add_class::<vision::PyVisionLanguageModel>()?;
    m.add_function(wrap_pyfunction!(models::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(resolve, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_MODEL", trustformers::DEFAULT_MODEL)?;
    Ok(())
}
