//! Output files: the image written in place, its bmap, compressed copies,
//! all staged in a private directory and committed together (`staging`).

pub mod bmap;
pub mod codec;
pub mod compress;
pub mod staging;
pub mod window;
