//! Arrays read in place: the bytes of a C-contiguous numpy array, by
//! address, for as long as the array is held.

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use singularity_gpu::{Dtype, Matrix};

/// The engine's dtype named by the Python half ("F32", "F16", "BF16", "F64").
pub fn dtype_named(name: &str) -> PyResult<Dtype> {
    match name {
        "F32" => Ok(Dtype::F32),
        "F16" => Ok(Dtype::F16),
        "BF16" => Ok(Dtype::BF16),
        "F64" => Ok(Dtype::F64),
        other => Err(PyValueError::new_err(format!(
            "dtype: expected F32, F16, BF16 or F64, got {other:?}"
        ))),
    }
}

/// A 2-D array's bytes as a matrix of `dtype`, read in place, and the
/// address of its first byte. The array must be C-contiguous and
/// little-endian with elements of `dtype`'s size (the Python half copies
/// any other array once before it gets here).
pub fn matrix_of<'a>(
    a: &'a Bound<'_, PyUntypedArray>,
    dtype: Dtype,
) -> PyResult<(Matrix<'a>, usize)> {
    let shape = a.shape();
    let [rows, cols] = shape else {
        return Err(PyValueError::new_err(format!(
            "expected a 2-D array, got a {}-D array of shape {shape:?}",
            shape.len()
        )));
    };
    let (rows, cols) = (*rows, *cols);
    let descr = a.dtype();
    if descr.itemsize() != dtype.size() {
        return Err(PyValueError::new_err(format!(
            "an array of {}-byte elements cannot be read as {}",
            descr.itemsize(),
            dtype.name()
        )));
    }
    if descr.is_native_byteorder() == Some(false) || cfg!(target_endian = "big") {
        return Err(PyValueError::new_err(
            "expected a little-endian array (the Python half copies others)",
        ));
    }
    if !a.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "expected a C-contiguous array (the Python half copies others)",
        ));
    }
    if rows == 0 || cols == 0 {
        return Err(crate::SingularityError::new_err(format!(
            "the array has {rows} rows and {cols} columns: there is nothing to survey"
        )));
    }
    let len = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| PyValueError::new_err("the array's size overflows"))?;
    // SAFETY: a C-contiguous array of rows × cols elements of this size owns
    // (or views) `len` bytes from its data pointer; the borrow of `a` keeps
    // the array, and so its buffer, alive for 'a. Writing to the array from
    // another thread while it is read is the caller's race, as documented.
    let bytes = unsafe {
        let ptr = (*a.as_array_ptr()).fields.data as *const u8;
        std::slice::from_raw_parts(ptr, len)
    };
    let m = Matrix::new(dtype, rows, cols, bytes)
        .ok_or_else(|| PyValueError::new_err("the array's size does not match its shape"))?;
    Ok((m, bytes.as_ptr() as usize))
}
