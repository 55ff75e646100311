//! numpy arrays in and out: token ids and masks come in as 2-D integer arrays (checked here,
//! naming the argument), tensors go out as f32 arrays of their shape.

use crate::errors::Failure;
use candle_core::{DType, Device, Tensor};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use trustformers::Error;

/// A `[batch, seq]` integer array as rows of u32, every value checked against `limit` (the
/// vocabulary size for ids, 2 for a 0/1 mask) so that a bad id is a `ValueError` naming the
/// argument, not an out-of-bounds read.
pub struct IdArray {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u32>,
}

impl IdArray {
    pub fn read(array: &PyReadonlyArray2<'_, i64>, name: &str, limit: u64) -> Result<Self, Error> {
        let shape = array.shape();
        let (rows, cols) = (shape[0], shape[1]);
        if rows == 0 || cols == 0 {
            return Err(Error::InvalidInput(format!(
                "`{name}` is empty (shape [{rows}, {cols}])"
            )));
        }
        let view = array.as_array();
        let mut data = Vec::with_capacity(rows * cols);
        for &v in view.iter() {
            match u32::try_from(v) {
                Ok(x) if u64::from(x) < limit => data.push(x),
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "`{name}` holds {v}, outside [0, {limit})"
                    )))
                }
            }
        }
        Ok(Self { rows, cols, data })
    }

    /// The values as a `[rows, cols]` u32 tensor.
    pub fn tensor(&self, device: &Device) -> Result<Tensor, Error> {
        Ok(Tensor::from_slice(
            &self.data,
            (self.rows, self.cols),
            device,
        )?)
    }
}

/// A tensor's values as f32 with its shape, read out while the GIL is released.
pub struct HostArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostArray {
    pub fn from_tensor(t: &Tensor) -> Result<Self, Failure> {
        let shape = t.dims().to_vec();
        let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self { shape, data })
    }

    /// The numpy array (one copy, under the GIL).
    pub fn into_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        PyArray1::from_vec(py, self.data).reshape(self.shape)
    }
}

/// A model's outputs as the Python side takes them: a dict of named arrays, with
/// `hidden_states` (a list of arrays) when given.
pub fn output_dict<'py>(
    py: Python<'py>,
    fields: Vec<(&str, HostArray)>,
    hidden_states: Option<Vec<HostArray>>,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let out = pyo3::types::PyDict::new(py);
    for (name, a) in fields {
        out.set_item(name, a.into_py(py)?)?;
    }
    if let Some(hidden) = hidden_states {
        let arrays = hidden
            .into_iter()
            .map(|a| a.into_py(py))
            .collect::<PyResult<Vec<_>>>()?;
        out.set_item("hidden_states", arrays)?;
    }
    Ok(out)
}
