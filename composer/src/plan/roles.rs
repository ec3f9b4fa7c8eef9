//! Roles: which table entry each partition gets (GPT entry, MBR primary or
//! logical, hybrid mirror, raw blob), and what a table format cannot hold.
//!
//! Split from [`super::allocate`], which places partitions; this module
//! only numbers them, so the numbering rules of each format are read in
//! one place.

use super::allocate::{diag, disk_diag, GPT_NAME_UNITS};
use super::{DiskSpec, PartSpec, TableKind};
use crate::diag::Diagnostic;

/// The first logical partition is number 5 whatever the number of primaries.
const FIRST_LOGICAL: u32 = 5;
/// A hybrid MBR's first entry is the protective 0xEE one; three are left.
const HYBRID_MIRRORS: usize = 3;
/// An MBR has four entries; with logical partitions the fourth holds the
/// extended partition.
const MBR_ENTRIES: usize = 4;
/// A partition's place in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// `in_table: false`: a raw byte range outside any table.
    Blob,
    /// A partition of a `table: none` disk: a range with no entry.
    Untabled,
    /// A GPT entry (plain or hybrid), with its MBR entry number when mirrored.
    Gpt {
        number: u32,
        mbr: Option<u32>,
    },
    Primary(u32),
    Logical(u32),
}

impl Role {
    pub(super) fn number(self) -> Option<u32> {
        match self {
            Role::Gpt { number, .. } | Role::Primary(number) | Role::Logical(number) => {
                Some(number)
            }
            Role::Blob | Role::Untabled => None,
        }
    }

    pub(super) fn mbr_number(self) -> Option<u32> {
        match self {
            Role::Gpt { mbr, .. } => mbr,
            Role::Primary(n) | Role::Logical(n) => Some(n),
            Role::Blob | Role::Untabled => None,
        }
    }

    /// True when an MBR entry describes the partition (32-bit limits apply).
    pub(super) fn in_mbr(self) -> bool {
        self.mbr_number().is_some()
    }
}

/// Gives every partition its role and number, reporting what a table
/// format cannot hold.
pub(super) fn assign_roles(disk: &DiskSpec, parts: &[PartSpec], diags: &mut Vec<Diagnostic>) -> Vec<Role> {
    let in_table = parts.iter().filter(|p| p.in_table).count();
    let mut roles = Vec::with_capacity(parts.len());
    let mut number = 0u32;
    let mut mirrored: Vec<&str> = Vec::new();
    for part in parts {
        if part.in_mbr && (!part.in_table || disk.table != TableKind::Hybrid) {
            diags.push(
                diag(part, &part.span, "in-mbr", format!(
                    "'{}' is marked to be mirrored in the MBR, which only a partition in a hybrid table can be",
                    part.name
                ))
                .help("remove in-mbr, or use table: hybrid"),
            );
        }
        if !part.in_table {
            roles.push(Role::Blob);
            continue;
        }
        number = number.saturating_add(1);
        let role = match disk.table {
            TableKind::None => Role::Untabled,
            TableKind::Gpt => Role::Gpt { number, mbr: None },
            TableKind::Hybrid => {
                let mut mbr = None;
                if part.in_mbr {
                    if mirrored.len() == HYBRID_MIRRORS {
                        diags.push(
                            diag(part, &part.span, "in-mbr", format!(
                                "'{}' cannot be mirrored in the hybrid MBR: '{}' already fill its {HYBRID_MIRRORS} free entries",
                                part.name,
                                mirrored.join("', '")
                            ))
                            .help("mirror at most three partitions in the MBR"),
                        );
                    } else {
                        mirrored.push(&part.name);
                        // Entry 1 is the protective 0xEE entry.
                        mbr = u32::try_from(mirrored.len() + 1).ok();
                    }
                }
                Role::Gpt { number, mbr }
            }
            TableKind::Mbr if in_table <= MBR_ENTRIES => Role::Primary(number),
            TableKind::Mbr if number < MBR_ENTRIES as u32 => Role::Primary(number),
            // Entry 4 is the extended partition; logical ones count from 5.
            TableKind::Mbr => Role::Logical(number - MBR_ENTRIES as u32 + FIRST_LOGICAL),
        };
        if disk.table.has_gpt() {
            let units = part.name.encode_utf16().count();
            if units > GPT_NAME_UNITS {
                diags.push(
                    diag(part, &part.span, "name", format!(
                        "'{}' is {units} UTF-16 code units long; a GPT partition name holds at most {GPT_NAME_UNITS}",
                        part.name
                    ))
                    .help("shorten the name"),
                );
            }
        }
        roles.push(role);
    }
    if disk.table.has_gpt() && in_table > disk.gpt_entries as usize {
        diags.push(
            disk_diag(
                disk,
                "gpt-entries",
                format!(
                    "{in_table} partitions do not fit in {} GPT entries",
                    disk.gpt_entries
                ),
            )
            .help(format!("set gpt-entries to at least {in_table}")),
        );
    }
    roles
}

