//! Output files: the image written in place, its bmap, compressed copies,
//! Android sparse and qcow2 conversions, all staged in a private directory and committed together (`staging`).

pub mod bmap;
pub mod codec;
pub mod compress;
pub mod qcow2;
pub mod simg;
pub mod staging;
pub mod window;
