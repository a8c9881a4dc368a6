//! A thin, bounds-checked front to the `gemm` crate (the pure-Rust GEMM candle itself uses):
//! matrices are described by a pointer, a shape and element strides, so the conv kernels can
//! multiply views into NCHW tensors without copying them.

use gemm::Parallelism;

use crate::cpu::Float;

/// A read-only strided matrix view.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<T> {
    ptr: *const T,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

/// A writable strided matrix view.
pub(crate) struct MatMut<T> {
    ptr: *mut T,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

impl<T> MatRef<T> {
    /// A `rows x cols` view of `data` with the given element strides.
    pub(crate) fn new(data: &[T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(
            span(rows, cols, rs, cs) <= data.len(),
            "matrix view out of bounds"
        );
        Self {
            ptr: data.as_ptr(),
            rows,
            cols,
            row_stride: rs as isize,
            col_stride: cs as isize,
        }
    }

    /// The transposed view (no data moves).
    pub(crate) fn t(self) -> Self {
        Self {
            ptr: self.ptr,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

impl<T> MatMut<T> {
    pub(crate) fn new(data: &mut [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(
            span(rows, cols, rs, cs) <= data.len(),
            "matrix view out of bounds"
        );
        Self {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            row_stride: rs as isize,
            col_stride: cs as isize,
        }
    }

    /// A view through a raw pointer, for tasks that write interleaved but disjoint parts of
    /// one buffer (rows of a tile inside an NCHW tensor).
    ///
    /// # Safety
    /// Every element of the view must be in bounds and written by no other live view.
    pub(crate) unsafe fn from_raw(
        ptr: *mut T,
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        Self {
            ptr,
            rows,
            cols,
            row_stride: rs as isize,
            col_stride: cs as isize,
        }
    }
}

/// `dst = a * b`, or `dst += a * b` when `accumulate`. Runs on the calling thread unless
/// `threads > 1`.
pub(crate) fn matmul<T: Float>(
    dst: MatMut<T>,
    a: MatRef<T>,
    b: MatRef<T>,
    accumulate: bool,
    threads: usize,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert_eq!(
        (dst.rows, dst.cols),
        (a.rows, b.cols),
        "output shape differs"
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the views were bounds-checked at construction (or promised by `from_raw`),
    // and the shapes agree as asserted above.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.ptr,
            dst.col_stride,
            dst.row_stride,
            accumulate,
            a.ptr,
            a.col_stride,
            a.row_stride,
            b.ptr,
            b.col_stride,
            b.row_stride,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_views_multiply_like_the_textbook() {
        // a: 2x3 row-major, b: 3x2 given as the transpose of a 2x3 row-major buffer.
        let a = [1.0f64, 2., 3., 4., 5., 6.];
        let bt = [1.0f64, 0., -1., 2., 1., 0.];
        let mut c = [10.0f64; 4];
        let b = MatRef::new(&bt, 2, 3, 3, 1).t();
        matmul(
            MatMut::new(&mut c, 2, 2, 2, 1),
            MatRef::new(&a, 2, 3, 3, 1),
            b,
            false,
            1,
        );
        assert_eq!(c, [-2., 4., -2., 13.]);
        matmul(
            MatMut::new(&mut c, 2, 2, 2, 1),
            MatRef::new(&a, 2, 3, 3, 1),
            b,
            true,
            1,
        );
        assert_eq!(c, [-4., 8., -4., 26.]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn views_are_bounds_checked() {
        let a = [0.0f32; 5];
        MatRef::new(&a, 2, 3, 3, 1);
    }
}
