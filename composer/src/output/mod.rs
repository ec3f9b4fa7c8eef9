//! Output files: the image written in place, its bmap, compressed copies,
//! all under `NAME.partial` until complete.

pub mod atomic;
pub mod bmap;
pub mod codec;
pub mod compress;
pub mod window;
