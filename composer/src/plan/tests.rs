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
    ]
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
