//! Unit tests of the planner: placement, every diagnostic's text, rendering.

use super::*;
use crate::diag::Span;
use crate::units::{KIB, MIB};
use std::path::PathBuf;
use std::sync::Arc;

fn at(line: u32, column: u32) -> Span {
    Span::new(Arc::new(PathBuf::from("board.yaml")), line, column)
}

fn disk(table: TableKind, size: Option<u64>) -> DiskSpec {
    DiskSpec {
        size,
        span: at(1, 1),
        size_span: size.map(|_| at(3, 9)),
        ..DiskSpec::new(table)
    }
}

/// A partition whose entry is at line `line` (its size on the next line).
fn part(name: &str, size: SizeReq, line: u32) -> PartSpec {
    PartSpec {
        key: format!("partitions[{}]", line / 10),
        span: at(line, 5),
        size_span: at(line + 1, 11),
        ..PartSpec::new(name, size)
    }
}

fn exact(mib: u64) -> SizeReq {
    SizeReq::Exact(mib * MIB)
}

fn auto(min: u64) -> SizeReq {
    SizeReq::Auto {
        min,
        headroom: Headroom::None,
    }
}

fn errors(disk: &DiskSpec, parts: &[PartSpec]) -> Vec<String> {
    match allocate(disk, parts) {
        Ok(plan) => panic!("expected errors, got {plan:#?}"),
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    }
}

/// One description per diagnostic the planner can give (a few give two).
fn bad_descriptions() -> Vec<(DiskSpec, Vec<PartSpec>)> {
    let d = disk(TableKind::Gpt, Some(64 * MIB));
    vec![
        (disk(TableKind::None, None), vec![]),
        (
            disk(TableKind::Gpt, Some(256 * MIB)),
            vec![PartSpec {
                offset: Some(0x2000),
                ..part("boot", exact(64), 10)
            }],
        ),
        (
            DiskSpec {
                sector_size: 1024,
                ..d.clone()
            },
            vec![],
        ),
        (
            DiskSpec {
                align: 1000,
                ..d.clone()
            },
            vec![],
        ),
        (
            DiskSpec {
                size: Some(1000),
                ..d.clone()
            },
            vec![],
        ),
        (
            DiskSpec {
                gpt_entries: 4,
                ..d.clone()
            },
            vec![],
        ),
        (
            DiskSpec {
                gpt_entries: 1_280_000,
                ..d.clone()
            },
            vec![],
        ),
        (
            DiskSpec {
                gpt_array_offset: Some(700),
                ..d.clone()
            },
            vec![],
        ),
        (
            DiskSpec {
                size: Some(16 * KIB),
                ..d.clone()
            },
            vec![],
        ),
        (
            d.clone(),
            vec![PartSpec {
                align: Some(1000),
                ..part("boot", exact(1), 10)
            }],
        ),
        (d.clone(), vec![part("boot", SizeReq::Exact(0), 10)]),
        (d.clone(), vec![part("boot", SizeReq::Exact(1000), 10)]),
        (
            d.clone(),
            vec![PartSpec {
                content_min: 612 * MIB,
                ..part("rootfs", exact(512), 10)
            }],
        ),
        (d.clone(), vec![part("boot", auto(0), 10)]),
        (
            d.clone(),
            vec![part(
                "boot",
                SizeReq::Auto {
                    min: u64::MAX - 5,
                    headroom: Headroom::Percent(10),
                },
                10,
            )],
        ),
        (
            d.clone(),
            vec![PartSpec {
                offset: Some(0x2001),
                ..part("boot", exact(1), 10)
            }],
        ),
        (
            d.clone(),
            vec![PartSpec {
                offset: Some(3 * MIB),
                align: Some(2 * MIB),
                ..part("boot", exact(1), 10)
            }],
        ),
        (
            d.clone(),
            vec![part("a", SizeReq::Fill, 10), part("b", SizeReq::Fill, 20)],
        ),
        (
            d.clone(),
            vec![part("a", SizeReq::Fill, 10), part("b", exact(1), 20)],
        ),
        (
            disk(TableKind::Gpt, None),
            vec![part("data", SizeReq::Fill, 10)],
        ),
        (
            d.clone(),
            vec![part("a", exact(63), 10), part("data", SizeReq::Fill, 20)],
        ),
        (
            d.clone(),
            vec![
                part("a", exact(60), 10),
                PartSpec {
                    content_min: 8 * MIB,
                    ..part("data", SizeReq::Fill, 20)
                },
            ],
        ),
        (
            d.clone(),
            vec![PartSpec {
                offset: Some(0x2000),
                ..part("boot", exact(64), 10)
            }],
        ),
        (d.clone(), vec![part("boot", exact(64), 10)]),
        (
            d.clone(),
            vec![PartSpec {
                offset: Some(60 * MIB),
                ..part("boot", exact(8), 10)
            }],
        ),
        (
            d.clone(),
            vec![
                part("a", exact(8), 10),
                PartSpec {
                    offset: Some(4 * MIB),
                    ..part("b", exact(8), 20)
                },
            ],
        ),
        (
            d.clone(),
            vec![PartSpec {
                in_table: false,
                offset: Some(0),
                ..part("spl", SizeReq::Exact(64 * KIB), 10)
            }],
        ),
        (
            d.clone(),
            vec![PartSpec {
                in_table: false,
                offset: Some(0),
                holes: vec![(512, 33 * 512)],
                ..part("spl", SizeReq::Exact(64 * KIB), 10)
            }],
        ),
        (
            d.clone(),
            vec![PartSpec {
                in_table: false,
                offset: Some(0),
                holes: vec![(60 * KIB, 8 * KIB)],
                ..part("spl", SizeReq::Exact(64 * KIB), 10)
            }],
        ),
        (
            DiskSpec {
                gpt_array_offset: Some(MIB),
                ..d.clone()
            },
            vec![PartSpec {
                offset: Some(64 * KIB),
                ..part("boot", exact(1), 10)
            }],
        ),
        (
            disk(TableKind::Mbr, Some(4 << 40)),
            vec![PartSpec {
                offset: Some(3 << 40),
                ..part("data", exact(1024 * 1024), 10)
            }],
        ),
        (
            disk(TableKind::Mbr, Some(64 * MIB)),
            vec![
                part("a", exact(1), 10),
                part("b", exact(1), 20),
                PartSpec {
                    offset: Some(40 * MIB),
                    ..part("c", exact(1), 30)
                },
                PartSpec {
                    offset: Some(10 * MIB),
                    ..part("d", exact(1), 40)
                },
                PartSpec {
                    offset: Some(50 * MIB),
                    ..part("e", exact(1), 50)
                },
            ],
        ),
        (
            disk(TableKind::Mbr, Some(64 * MIB)),
            vec![
                part("a", exact(1), 10),
                part("b", exact(1), 20),
                part("c", exact(1), 30),
                PartSpec {
                    offset: Some(0),
                    ..part("d", exact(1), 40)
                },
                part("e", exact(1), 50),
            ],
        ),
        (
            disk(TableKind::Mbr, Some(64 * MIB)),
            vec![
                part("a", exact(1), 10),
                part("b", exact(1), 20),
                part("c", exact(1), 30),
                part("d", exact(1), 40),
                PartSpec {
                    offset: Some(512),
                    ..part("e", SizeReq::Exact(512), 50)
                },
            ],
        ),
        (
            DiskSpec {
                gpt_entries: 128,
                size: Some(256 * MIB),
                ..d.clone()
            },
            (0..129)
                .map(|k| part(&format!("p{k}"), SizeReq::Exact(512), 10))
                .collect(),
        ),
        (
            d.clone(),
            vec![part(
                "a-very-long-partition-name-that-goes-on",
                exact(1),
                10,
            )],
        ),
        (
            disk(TableKind::Hybrid, Some(64 * MIB)),
            (0..4)
                .map(|k| PartSpec {
                    in_mbr: true,
                    ..part(&format!("p{k}"), exact(1), 10 * k + 10)
                })
                .collect(),
        ),
        (
            d.clone(),
            vec![PartSpec {
                in_mbr: true,
                ..part("boot", exact(1), 10)
            }],
        ),
        (
            d.clone(),
            vec![PartSpec {
                holes: vec![(MIB, MIB)],
                ..part("boot", exact(1), 10)
            }],
        ),
        (
            d.clone(),
            vec![PartSpec {
                offset: Some(u64::MAX - 511),
                ..part("boot", exact(1), 10)
            }],
        ),
        // A GUID of the user's own (no MBR byte) in an MBR; an MBR byte no
        // shorthand has in a GPT; a GPT-only type mirrored in a hybrid MBR.
        (
            disk(TableKind::Mbr, Some(64 * MIB)),
            vec![PartSpec {
                part_type: custom_guid_type(),
                type_span: Some(at(11, 11)),
                ..part("fip", exact(1), 10)
            }],
        ),
        (
            d.clone(),
            vec![PartSpec {
                part_type: mbr_only_type(),
                type_span: Some(at(11, 11)),
                ..part("data", exact(1), 10)
            }],
        ),
        (
            disk(TableKind::Hybrid, Some(64 * MIB)),
            vec![PartSpec {
                part_type: custom_guid_type(),
                type_span: Some(at(11, 11)),
                in_mbr: true,
                ..part("fip", exact(1), 10)
            }],
        ),
        // Allwinner's SPL at 8 KiB over the GPT array: the fix is
        // gpt-location; 440 bytes of boot code at 0 take a sector, over the
        // MBR's table: the fix is a hole.
        (
            d.clone(),
            vec![PartSpec {
                in_table: false,
                offset: Some(8 * KIB),
                ..part("spl", auto(24 * KIB), 10)
            }],
        ),
        (
            disk(TableKind::Mbr, Some(64 * MIB)),
            vec![PartSpec {
                in_table: false,
                offset: Some(0),
                content_min: 440,
                ..part("bootcode", auto(440), 10)
            }],
        ),
        // forced-primary before the extended partition, a logical partition
        // after a forced primary, more primaries than entries, forced-primary
        // in a GPT.
        (
            DiskSpec {
                extended_entry: Some(2),
                ..disk(TableKind::Mbr, Some(64 * MIB))
            },
            vec![
                PartSpec {
                    forced_primary: true,
                    ..part("a", exact(1), 10)
                },
                part("b", exact(1), 20),
                PartSpec {
                    forced_primary: true,
                    ..part("c", exact(1), 30)
                },
                part("d", exact(1), 40),
            ],
        ),
        (
            disk(TableKind::Mbr, Some(64 * MIB)),
            vec![
                part("a", exact(1), 10),
                part("b", exact(1), 20),
                part("c", exact(1), 30),
                part("d", exact(1), 40),
                PartSpec {
                    forced_primary: true,
                    ..part("e", exact(1), 50)
                },
            ],
        ),
        (
            d.clone(),
            vec![PartSpec {
                forced_primary: true,
                ..part("a", exact(1), 10)
            }],
        ),
    ]
}

/// A GPT type GUID no shorthand has: no MBR form.
fn custom_guid_type() -> crate::ptable::types::PartType {
    crate::ptable::types::check("19d5df83-11b0-457b-be2c-7559c13142a5").unwrap()
}

/// An MBR byte no shorthand has: no GPT form.
fn mbr_only_type() -> crate::ptable::types::PartType {
    crate::ptable::types::check("0xda").unwrap()
}

/// Every diagnostic's text, asserted once: the rendered messages of
/// [`bad_descriptions`] are kept in `testdata/diagnostics.txt`.
#[test]
fn every_diagnostic_reads_as_expected() {
    let mut text = String::new();
    for (disk, parts) in bad_descriptions() {
        for e in errors(&disk, &parts) {
            text.push_str(&e);
            text.push('\n');
        }
        text.push_str("--\n");
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/plan/testdata/diagnostics.txt"
        );
        std::fs::write(path, &text).unwrap();
    }
    let expected = include_str!("testdata/diagnostics.txt");
    for (got, want) in text.lines().zip(expected.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(text, expected);
}

/// The layout of the DESIGN.md sketch: a U-Boot blob at 32 KiB, then the
/// partitions in order at 1 MiB boundaries, `data` filling the rest.
fn sketch() -> (DiskSpec, Vec<PartSpec>) {
    let parts = vec![
        PartSpec {
            in_table: false,
            offset: Some(32 * KIB),
            content: "raw flash.bin".into(),
            ..part("uboot", auto(500_000), 10)
        },
        PartSpec {
            bootable: true,
            part_type: crate::ptable::types::lookup("esp").unwrap(),
            content: "vfat 'BOOT'".into(),
            ..part("boot", exact(64), 20)
        },
        PartSpec {
            content: "ext4 'root-a' from /x/target".into(),
            ..part(
                "root-a",
                SizeReq::Auto {
                    min: 100 * MIB,
                    headroom: Headroom::Percent(20),
                },
                30,
            )
        },
        PartSpec {
            content: "ext4 (empty)".into(),
            ..part("data", SizeReq::Fill, 40)
        },
    ];
    (disk(TableKind::Gpt, Some(512 * MIB)), parts)
}

#[test]
fn places_partitions_in_order_at_alignment_boundaries() {
    let (disk, parts) = sketch();
    let plan = allocate(&disk, &parts).unwrap();
    let got: Vec<_> = plan
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.number, p.start, p.size))
        .collect();
    let last_usable_end = 512 * MIB - 33 * 512;
    assert_eq!(
        got,
        [
            // 500000 bytes rounded up to whole sectors.
            ("uboot", None, 32 * KIB, 500_224),
            ("boot", Some(1), MIB, 64 * MIB),
            // 100 MiB + 20 %.
            ("root-a", Some(2), 65 * MIB, 120 * MIB),
            // Up to the last 1 MiB boundary before the backup GPT.
            (
                "data",
                Some(3),
                185 * MIB,
                (last_usable_end / MIB) * MIB - 185 * MIB
            ),
        ]
    );
    assert_eq!(plan.partitions[1].gpt_attrs, 1 << 2, "bootable is bit 2");
    let g = plan.gpt.unwrap();
    assert_eq!((g.first_usable_lba, g.last_usable_lba), (34, 1048542));
    let kinds: Vec<_> = plan.regions.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RegionKind::Mbr,
            RegionKind::GptHeader,
            RegionKind::GptArray,
            RegionKind::Blob(0),
            RegionKind::Partition(1),
            RegionKind::Partition(2),
            RegionKind::Partition(3),
            RegionKind::BackupGptArray,
            RegionKind::BackupGptHeader,
        ]
    );
}

#[test]
fn auto_disk_size_is_the_smallest_that_fits_rounded_to_alignment() {
    let parts = [part("a", exact(3), 10), part("b", SizeReq::Exact(512), 20)];
    let plan = allocate(&disk(TableKind::Gpt, None), &parts).unwrap();
    // b ends at 4 MiB + 512; the backup GPT needs 33 sectors more.
    assert_eq!(plan.disk_size, 5 * MIB);
    let plan = allocate(&disk(TableKind::Mbr, None), &parts).unwrap();
    assert_eq!(plan.disk_size, 5 * MIB);
    let plan = allocate(&disk(TableKind::None, None), &parts[..1]).unwrap();
    assert_eq!(
        plan.disk_size,
        3 * MIB,
        "no table: the partition starts at 0"
    );
    assert_eq!(plan.partitions[0].start, 0);
    assert_eq!(plan.partitions[0].number, None);
    assert_eq!(plan.regions.len(), 1);
}

#[test]
fn mbr_numbers_primaries_then_logical_partitions_after_their_ebr() {
    let names = ["a", "b", "c", "d", "e"];
    let parts: Vec<_> = names.iter().map(|n| part(n, exact(1), 10)).collect();
    let plan = allocate(&disk(TableKind::Mbr, Some(64 * MIB)), &parts[..4]).unwrap();
    let numbers: Vec<_> = plan.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(plan.extended, None);

    let plan = allocate(&disk(TableKind::Mbr, Some(64 * MIB)), &parts).unwrap();
    let got: Vec<_> = plan
        .partitions
        .iter()
        .map(|p| (p.number, p.ebr, p.start))
        .collect();
    assert_eq!(
        got,
        [
            (Some(1), None, MIB),
            (Some(2), None, 2 * MIB),
            (Some(3), None, 3 * MIB),
            // EBR at the aligned cursor (as sfdisk), the partition at the next boundary.
            (Some(5), Some(4 * MIB), 5 * MIB),
            (Some(6), Some(6 * MIB), 7 * MIB),
        ]
    );
    assert_eq!(plan.extended, Some((4 * MIB, 4 * MIB)));
    let ebrs: Vec<_> = plan
        .regions
        .iter()
        .filter(|r| matches!(r.kind, RegionKind::Ebr(_)))
        .map(|r| (r.name.as_str(), r.start, r.size))
        .collect();
    assert_eq!(ebrs, [("EBR 5", 4 * MIB, 512), ("EBR 6", 6 * MIB, 512)]);
}

fn hybrid_parts() -> [PartSpec; 3] {
    [
        PartSpec {
            in_mbr: true,
            ..part("boot", exact(1), 10)
        },
        part("root", exact(1), 20),
        PartSpec {
            in_mbr: true,
            ..part("data", exact(1), 30)
        },
    ]
}

fn numbers(plan: &Plan) -> Vec<(Option<u32>, Option<u32>)> {
    plan.partitions
        .iter()
        .map(|p| (p.number, p.mbr_number))
        .collect()
}

#[test]
fn hybrid_mirrors_come_first_and_the_protective_entry_last_as_genimage_writes_them() {
    let plan = allocate(&disk(TableKind::Hybrid, Some(64 * MIB)), &hybrid_parts()).unwrap();
    assert_eq!(
        numbers(&plan),
        [(Some(1), Some(1)), (Some(2), None), (Some(3), Some(2))]
    );
    assert_eq!(plan.protective_entry, 3);
}

#[test]
fn hybrid_protective_entry_first_puts_the_mirrors_after_it_as_sgdisk_does() {
    let d = DiskSpec {
        protective_first: true,
        ..disk(TableKind::Hybrid, Some(64 * MIB))
    };
    let plan = allocate(&d, &hybrid_parts()).unwrap();
    assert_eq!(
        numbers(&plan),
        [(Some(1), Some(2)), (Some(2), None), (Some(3), Some(3))]
    );
    assert_eq!(plan.protective_entry, 1);
}

#[test]
fn extended_partition_entry_and_forced_primary_follow_genimage() {
    // genimage: extended-partition = 2, the last one forced-primary.
    let d = DiskSpec {
        extended_entry: Some(2),
        ..disk(TableKind::Mbr, Some(64 * MIB))
    };
    let parts = [
        part("boot", exact(1), 10),
        part("root-a", exact(1), 20),
        part("root-b", exact(1), 30),
        PartSpec {
            forced_primary: true,
            ..part("recovery", exact(1), 40)
        },
    ];
    let plan = allocate(&d, &parts).unwrap();
    assert_eq!(
        numbers(&plan),
        [
            (Some(1), Some(1)),
            (Some(5), Some(5)),
            (Some(6), Some(6)),
            (Some(3), Some(3))
        ]
    );
    assert_eq!(plan.extended_entry, 2);
    let (start, size) = plan.extended.unwrap();
    assert_eq!(start, 2 * MIB, "from the first EBR");
    assert_eq!(start + size, plan.partitions[2].end());
    assert!(plan.partitions[3].start >= start + size);
}

#[test]
fn a_gpt_disk_with_a_small_alignment_ends_on_4_kib_like_genimage() {
    let d = DiskSpec {
        align: 512,
        ..disk(TableKind::Gpt, None)
    };
    let plan = allocate(&d, &[part("a", SizeReq::Exact(1000 * 512), 10)]).unwrap();
    let end = plan.partitions[0].end() + 33 * 512;
    assert_eq!(plan.disk_size, end.div_ceil(4096) * 4096);
    assert_ne!(
        plan.disk_size, end,
        "the last partition end alone is not 4 KiB aligned"
    );
    // An MBR disk ends with its last partition, as genimage's does.
    let d = DiskSpec {
        align: 512,
        ..disk(TableKind::Mbr, None)
    };
    let plan = allocate(&d, &[part("a", SizeReq::Exact(1000 * 512), 10)]).unwrap();
    assert_eq!(plan.disk_size, plan.partitions[0].end());
}

#[test]
fn types_without_a_form_in_their_table_are_refused_unless_overridden() {
    let ok = allocate(
        &disk(TableKind::Gpt, Some(64 * MIB)),
        &[PartSpec {
            part_type: custom_guid_type(),
            ..part("fip", exact(1), 10)
        }],
    );
    assert!(ok.is_ok(), "a GUID in a GPT");
    let mut with_byte = custom_guid_type();
    with_byte.mbr = Some(0x83);
    let ok = allocate(
        &disk(TableKind::Mbr, Some(64 * MIB)),
        &[PartSpec {
            part_type: with_byte,
            ..part("fip", exact(1), 10)
        }],
    );
    assert!(ok.is_ok(), "a GUID with mbr-type in an MBR");
    let ok = allocate(
        &disk(TableKind::Hybrid, Some(64 * MIB)),
        &[PartSpec {
            part_type: custom_guid_type(),
            ..part("fip", exact(1), 10)
        }],
    );
    assert!(ok.is_ok(), "a GUID in a hybrid table, not mirrored");
}

#[test]
fn holes_let_table_regions_lie_inside_a_blob() {
    // A boot ROM image at offset 0 that leaves room for the MBR entries and
    // the GPT header and array (genimage's `holes`).
    let parts = [
        PartSpec {
            in_table: false,
            offset: Some(0),
            holes: vec![(440, 17408 - 440)],
            ..part("spl", SizeReq::Exact(64 * KIB), 10)
        },
        part("boot", exact(1), 20),
    ];
    let plan = allocate(&disk(TableKind::Gpt, Some(64 * MIB)), &parts).unwrap();
    assert_eq!(plan.partitions[1].start, MIB);
}

#[test]
fn a_moved_gpt_array_leaves_room_for_a_blob_after_the_header() {
    // Allwinner's boot ROM reads its SPL from 8 KiB, inside the usual array.
    let disk = DiskSpec {
        gpt_array_offset: Some(MIB),
        ..disk(TableKind::Gpt, Some(64 * MIB))
    };
    let parts = [
        PartSpec {
            in_table: false,
            offset: Some(8 * KIB),
            ..part("spl", SizeReq::Exact(512 * KIB), 10)
        },
        part("boot", exact(1), 20),
    ];
    let plan = allocate(&disk, &parts).unwrap();
    let g = plan.gpt.unwrap();
    assert_eq!(g.array_offset, MIB);
    assert_eq!(g.first_usable_lba, (MIB + 16 * KIB) / 512);
    assert_eq!(plan.partitions[1].start, 2 * MIB);
}

#[test]
fn gpt_on_4096_byte_sectors_uses_four_array_sectors() {
    let disk = DiskSpec {
        sector_size: 4096,
        ..disk(TableKind::Gpt, Some(64 * MIB))
    };
    let plan = allocate(&disk, &[part("a", SizeReq::Fill, 10)]).unwrap();
    let g = plan.gpt.unwrap();
    assert_eq!((g.array_offset, g.array_size), (8192, 16384));
    assert_eq!(g.first_usable_lba, 6);
    assert_eq!(g.backup_header_offset, 64 * MIB - 4096);
    assert_eq!(g.backup_array_offset, 64 * MIB - 4096 - 16384);
    assert_eq!(g.last_usable_lba, (64 * MIB - 4096 - 16384) / 4096 - 1);
    assert_eq!(plan.partitions[0].start, MIB);
}

#[test]
fn renders_a_table_and_a_bar() {
    let (disk, parts) = sketch();
    let plan = allocate(&disk, &parts).unwrap();
    let text = render_text(&plan, &parts);
    let expected = include_str!("testdata/sketch.txt");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/plan/testdata/sketch.txt");
        std::fs::write(path, &text).unwrap();
    }
    assert_eq!(text, expected);
    // MBR with logical partitions: the EBRs are rows and '#' in the bar.
    let names = ["boot", "root-a", "root-b", "config", "data"];
    let mbr_parts: Vec<_> = names
        .iter()
        .map(|n| PartSpec {
            content: format!("ext4 '{n}'"),
            ..part(n, exact(8), 10)
        })
        .collect();
    let mbr = allocate(
        &super::tests::disk(TableKind::Mbr, Some(64 * MIB)),
        &mbr_parts,
    )
    .unwrap();
    let mbr_text = render_text(&mbr, &mbr_parts);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/plan/testdata/mbr.txt");
        std::fs::write(path, &mbr_text).unwrap();
    }
    assert_eq!(mbr_text, include_str!("testdata/mbr.txt"));
    let json = render_json(&plan, &parts);
    assert_eq!(json["disk"]["size"], 512 * MIB);
    assert_eq!(json["partitions"][2]["name"], "root-a");
    assert_eq!(json["partitions"][2]["first_lba"], 65 * 2048);
    assert_eq!(json["regions"][3]["kind"], "blob");
}

/// Every key `render_json` prints is described in docs/plan-json.md.
#[test]
fn every_json_field_is_documented() {
    fn keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    out.push(format!("{prefix}{k}"));
                    keys(v, &format!("{prefix}{k}."), out);
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    keys(v, "", out);
                }
            }
            _ => {}
        }
    }
    let doc = include_str!("../../../docs/plan-json.md");
    let mut parts = vec![PartSpec {
        in_mbr: true,
        ..part("boot", exact(1), 10)
    }];
    parts.extend((0..5).map(|k| part(&format!("p{k}"), exact(1), 20)));
    for table in [TableKind::Gpt, TableKind::Mbr, TableKind::Hybrid] {
        let parts = if table == TableKind::Hybrid {
            parts.clone()
        } else {
            parts
                .iter()
                .cloned()
                .map(|p| PartSpec { in_mbr: false, ..p })
                .collect()
        };
        let plan = allocate(&disk(table, Some(64 * MIB)), &parts).unwrap();
        let mut found = Vec::new();
        keys(&render_json(&plan, &parts), "", &mut found);
        for key in found {
            let last = key.rsplit('.').next().unwrap_or(&key);
            assert!(
                doc.contains(&format!("`{key}")) || doc.contains(&format!("`{last}`")),
                "{key} is not in docs/plan-json.md"
            );
        }
    }
}

/// The boxes of the bar: (title, x, width, dashed) of each `<g><title>` line.
fn svg_boxes(svg: &str) -> Vec<(String, u64, u64, bool)> {
    let attr = |line: &str, name: &str| -> u64 {
        let start = line.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        line[start..].split('"').next().unwrap().parse().unwrap()
    };
    svg.lines()
        .filter(|l| l.starts_with("<g><title>"))
        .map(|l| {
            let title = l["<g><title>".len()..l.find("</title>").unwrap()].to_string();
            (
                title,
                attr(l, "x"),
                attr(l, "width"),
                l.contains("stroke-dasharray"),
            )
        })
        .collect()
}

#[test]
fn svg_draws_every_region_and_gap_with_its_text() {
    let (disk, parts) = sketch();
    let plan = allocate(&disk, &parts).unwrap();
    let svg = render_svg(&plan, &parts);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>\n"));
    assert_eq!(svg, render_svg(&plan, &parts), "deterministic");
    let boxes = svg_boxes(&svg);
    let names: Vec<&str> = boxes
        .iter()
        .map(|b| b.0.split(':').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "MBR",
            "GPT header",
            "GPT array",
            "(free)",
            "uboot",
            "(free)",
            "boot",
            "root-a",
            "data",
            "(free)",
            "backup GPT array",
            "backup GPT header"
        ]
    );
    // The boxes tile the bar from the margin, none narrower than MIN_BOX.
    let mut x = 20;
    for b in &boxes {
        assert_eq!(b.1, x, "{b:?}");
        assert!(b.2 >= 48, "{b:?}");
        x += b.2;
    }
    assert_eq!(x, 20 + 920);
    // Tiny regions are widened and dashed; partitions are drawn to scale
    // (boot 64 MiB against root-a 120 MiB within a pixel of their ratio).
    let by_name = |n: &str| {
        boxes
            .iter()
            .find(|b| b.0.starts_with(&format!("{n}:")))
            .unwrap()
    };
    assert!(by_name("MBR").3 && by_name("GPT header").3 && by_name("backup GPT header").3);
    assert!(!by_name("boot").3 && !by_name("root-a").3 && !by_name("data").3);
    let (boot, root) = (by_name("boot").2, by_name("root-a").2);
    let root_mib = plan.partitions[2].size / MIB;
    assert!(
        (boot * root_mib).abs_diff(root * 64) <= root_mib,
        "{boot} {root}"
    );
    assert!(svg.contains("dashed boxes are widened (not to scale)"));
    // The list: every row's name, start, size, type and content as text.
    for text in [
        ">root-a</text>",
        ">ext4 &apos;root-a&apos; from /x/target</text>",
        ">vfat &apos;BOOT&apos;</text>",
        ">raw flash.bin</text>",
        ">esp</text>",
        ">raw</text>",
        ">64 MiB</text>",
        ">(free)</text>",
        ">protective MBR (0xEE entry)</text>",
        ">128 entries</text>",
        ">1048576</text>",
        "disk: 512 MiB (536870912 bytes), table gpt, 512-byte sectors",
    ] {
        assert!(svg.contains(text), "{text} missing in\n{svg}");
    }
}

#[test]
fn svg_escapes_text_and_cuts_names_to_their_box() {
    let parts = vec![
        PartSpec {
            content: "vfat 'A<&>\"B'".into(),
            ..part("a-partition-with-a-long-name", exact(1), 10)
        },
        PartSpec {
            content: "ext4".into(),
            ..part("data", SizeReq::Fill, 20)
        },
    ];
    let plan = allocate(&disk(TableKind::Mbr, Some(1024 * MIB)), &parts).unwrap();
    let svg = render_svg(&plan, &parts);
    assert!(svg.contains(">vfat &apos;A&lt;&amp;&gt;&quot;B&apos;</text>"));
    assert!(!svg.contains("A<&"));
    // 1 MiB of 1 GiB is a widened 48-pixel box: five characters, cut.
    assert!(svg.contains(">a-pa…</text>"), "{svg}");
    assert!(svg.contains(">a-partition-with-a-long-name</text>"));
}

#[test]
fn svg_bar_grows_with_many_partitions_instead_of_hiding_them() {
    let parts: Vec<PartSpec> = (0..30)
        .map(|i| part(&format!("p{i}"), exact(1), 10 * i + 10))
        .collect();
    let plan = allocate(&disk(TableKind::Gpt, Some(4096 * MIB)), &parts).unwrap();
    let svg = render_svg(&plan, &parts);
    let boxes = svg_boxes(&svg);
    assert!(boxes.iter().all(|b| b.2 >= 48));
    let end = boxes.last().map(|b| b.1 + b.2).unwrap();
    let width: u64 = svg["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"".len()..]
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(end + 20 <= width, "{end} {width}");
}
