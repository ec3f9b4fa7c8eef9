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

fn part(name: &str, size: SizeReq, line: u32) -> PartSpec {
    PartSpec {
        key: String::new(),
        span: at(line, 5),
        size_span: at(line + 1, 11),
        ..PartSpec::new(name, size)
    }
}

fn errors(disk: &DiskSpec, parts: &[PartSpec]) -> Vec<String> {
    match allocate(disk, parts) {
        Ok(plan) => panic!("expected errors, got {plan:#?}"),
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn sketch() {
    let parts = vec![
        PartSpec {
            in_table: false,
            offset: Some(32 * KIB),
            ..part(
                "uboot",
                SizeReq::Auto {
                    min: 500_000,
                    headroom: Headroom::None,
                },
                10,
            )
        },
        PartSpec {
            bootable: true,
            ..part("boot", SizeReq::Exact(64 * MIB), 20)
        },
        part(
            "root",
            SizeReq::Auto {
                min: 100 * MIB,
                headroom: Headroom::Percent(20),
            },
            30,
        ),
        part("data", SizeReq::Fill, 40),
    ];
    let plan = allocate(&disk(TableKind::Gpt, Some(512 * MIB)), &parts).unwrap();
    println!("{}", render_text(&plan, &parts));
    println!("{:#}", render_json(&plan, &parts));
}
