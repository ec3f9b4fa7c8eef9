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
/// A hybrid MBR's 0xEE entry takes one of the four; three are left.
const HYBRID_MIRRORS: usize = 3;
/// An MBR has four entries; with logical partitions one holds the extended
/// partition (the fourth unless `extended-partition` says otherwise).
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

/// The roles of the partitions, and the MBR entries of the extended
/// partition and of the 0xEE entry.
pub(super) struct Numbering {
    pub roles: Vec<Role>,
    /// MBR: the entry of the extended partition, when there are logical ones.
    pub extended_entry: Option<u32>,
    /// GPT and hybrid: the entry of the 0xEE protective entry.
    pub protective_entry: u32,
}

/// Gives every partition its role and number, reporting what a table
/// format cannot hold.
pub(super) fn assign_roles(
    disk: &DiskSpec,
    parts: &[PartSpec],
    diags: &mut Vec<Diagnostic>,
) -> Numbering {
    let in_table = parts.iter().filter(|p| p.in_table).count();
    // genimage's rule: an extended partition in entry 4 when more than four
    // partitions are in the table, or where `extended-partition` puts it.
    let extended = match (disk.table, disk.extended_entry) {
        (TableKind::Mbr, Some(e)) => Some(e),
        (TableKind::Mbr, None) if in_table > MBR_ENTRIES => Some(MBR_ENTRIES as u32),
        _ => None,
    };
    let mut roles = Vec::with_capacity(parts.len());
    let mut number = 0u32;
    let mut mirrored: Vec<&str> = Vec::new();
    let mut logical = FIRST_LOGICAL;
    let mut used_extended = false;
    // The entry the next forced primary takes, and the first one.
    let mut next_forced = extended.map_or(1, |e| e + 1);
    let mut first_forced: Option<&str> = None;
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
        if part.forced_primary && (!part.in_table || disk.table != TableKind::Mbr) {
            diags.push(
                diag(
                    part,
                    &part.span,
                    "forced-primary",
                    format!(
                        "'{}' is forced-primary, which only a partition in an MBR table can be",
                        part.name
                    ),
                )
                .help("remove forced-primary, or use table: mbr"),
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
                        // The 0xEE entry is last, or first with protective_first.
                        let shift = usize::from(disk.protective_first);
                        mbr = u32::try_from(mirrored.len() + shift).ok();
                    }
                }
                Role::Gpt { number, mbr }
            }
            TableKind::Mbr => match extended {
                Some(e) if number >= e => {
                    used_extended = true;
                    mbr_role_after_extended(
                        part,
                        &mut next_forced,
                        &mut logical,
                        &mut first_forced,
                        diags,
                    )
                }
                _ => {
                    if part.forced_primary && part.in_table {
                        diags.push(
                            diag(part, &part.span, "forced-primary", format!(
                                "'{}' is forced-primary but comes before the extended partition, where every partition is primary",
                                part.name
                            ))
                            .help("remove forced-primary, or set image.extended-partition to an entry before it"),
                        );
                    }
                    Role::Primary(number)
                }
            },
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
    let protective_entry = if disk.table == TableKind::Hybrid && !disk.protective_first {
        u32::try_from(mirrored.len() + 1).unwrap_or(1)
    } else {
        1
    };
    Numbering {
        roles,
        extended_entry: extended.filter(|_| used_extended),
        protective_entry,
    }
}

/// The role of an MBR partition at or after the extended partition's
/// entry: logical, or with `forced_primary` a primary in the next free
/// entry; once one is forced, all after it must be (genimage's rule: the
/// logical partitions are contiguous).
fn mbr_role_after_extended<'p>(
    part: &'p PartSpec,
    next_forced: &mut u32,
    logical: &mut u32,
    first_forced: &mut Option<&'p str>,
    diags: &mut Vec<Diagnostic>,
) -> Role {
    if part.forced_primary {
        let entry = *next_forced;
        *next_forced += 1;
        first_forced.get_or_insert(&part.name);
        if entry as usize > MBR_ENTRIES {
            diags.push(
                diag(part, &part.span, "forced-primary", format!(
                    "'{}' cannot be a primary partition: the MBR's {MBR_ENTRIES} entries are taken by the primaries, the extended partition and the forced-primary ones before it",
                    part.name
                ))
                .help("make it logical (remove forced-primary), or set image.extended-partition to a later entry"),
            );
        }
        return Role::Primary(entry);
    }
    if let Some(forced) = first_forced {
        diags.push(
            diag(part, &part.span, "", format!(
                "'{}' would be a logical partition after the forced-primary '{forced}', but logical partitions must be contiguous",
                part.name
            ))
            .help(format!("list '{}' before '{forced}', or make it forced-primary too", part.name)),
        );
    }
    let n = *logical;
    *logical += 1;
    Role::Logical(n)
}

/// Every in-table partition's type must have a form in each table that
/// lists it: a GUID for a GPT entry, a byte for an MBR entry (a primary, a
/// logical or a hybrid mirror). Raw values without the other form are
/// refused here rather than written as "Linux data".
pub(super) fn check_type_forms(
    disk: &DiskSpec,
    parts: &[PartSpec],
    roles: &[Role],
    diags: &mut Vec<Diagnostic>,
) {
    for (part, role) in parts.iter().zip(roles) {
        if !part.in_table || disk.table == TableKind::None {
            continue;
        }
        let span = part.type_span.as_ref().unwrap_or(&part.span);
        let value = part.part_type.describe();
        if disk.table.has_gpt() && part.part_type.gpt.is_none() {
            diags.push(
                diag(part, span, "type", format!(
                    "'{}' type \"{value}\" is an MBR byte with no GPT type, but '{}' is in a GPT",
                    part.name, part.name
                ))
                .help("write the GPT type GUID, or a shorthand that has both forms (e.g. linux, fat32, esp), or use table: mbr"),
            );
        }
        if role.in_mbr() && part.part_type.mbr.is_none() {
            let table = if disk.table == TableKind::Hybrid {
                "the hybrid MBR"
            } else {
                "an MBR"
            };
            diags.push(
                diag(part, span, "type", format!(
                    "'{}' type \"{value}\" has no MBR type byte, but '{}' is in {table}",
                    part.name, part.name
                ))
                .help("add mbr-type with the byte its readers expect (e.g. mbr-type: 0x83), or use a shorthand that has both forms"),
            );
        }
    }
}
