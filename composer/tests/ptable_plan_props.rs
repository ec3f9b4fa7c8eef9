//! Properties of the planner over random disks and partition lists: every
//! region inside the disk and disjoint from every other, partitions on
//! whole sectors and aligned as asked, table numbers in order, `fill`
//! taking exactly the rest, auto disk sizes minimal; and neither the
//! planner nor the encoder panics, whatever the input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use composer::plan::{
    allocate, DiskSpec, Headroom, PartSpec, Plan, RegionKind, SizeReq, TableKind,
};
use composer::ptable::encode;
use proptest::prelude::*;

fn table() -> impl Strategy<Value = TableKind> {
    prop_oneof![
        Just(TableKind::Gpt),
        Just(TableKind::Mbr),
        Just(TableKind::Hybrid),
        Just(TableKind::None)
    ]
}

/// A partition with a size in sectors of 512 bytes (scaled by the caller).
#[derive(Clone, Debug)]
struct Part {
    size: u8, // 0 = auto, 1 = exact, 2 = fill
    amount: u64,
    headroom: Headroom,
    in_table: bool,
    in_mbr: bool,
    align_shift: Option<u32>,
    /// An explicit offset in sectors.
    offset: Option<u64>,
}

fn part() -> impl Strategy<Value = Part> {
    (
        prop_oneof![4 => Just(0u8), 4 => Just(1u8), 1 => Just(2u8)],
        1u64..20_000,
        prop_oneof![
            Just(Headroom::None),
            (0u64..100_000).prop_map(Headroom::Bytes),
            (0u32..300).prop_map(Headroom::Percent),
            (0u32..300, 0u64..100_000).prop_map(|(p, b)| Headroom::PercentAndBytes(p, b))
        ],
        prop::bool::weighted(0.85),
        any::<bool>(),
        prop::option::weighted(0.3, 0u32..12),
        prop::option::weighted(0.15, 0u64..300_000),
    )
        .prop_map(
            |(size, amount, headroom, in_table, in_mbr, align_shift, offset)| Part {
                size,
                amount,
                headroom,
                in_table,
                in_mbr,
                align_shift,
                offset,
            },
        )
}

fn build(
    table: TableKind,
    ss: u32,
    align_shift: u32,
    sized: Option<u64>,
    raw: &[Part],
    offsets: bool,
) -> (DiskSpec, Vec<PartSpec>) {
    let ss64 = u64::from(ss);
    let mut seen_fill = false;
    let mut mirrored = 0;
    let parts = raw
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let size = match p.size {
                // Auto minimums in bytes, not whole sectors.
                0 => SizeReq::Auto {
                    min: p.amount * 517,
                    headroom: p.headroom,
                },
                2 if !seen_fill => {
                    seen_fill = true;
                    SizeReq::Fill
                }
                _ => SizeReq::Exact(p.amount * ss64),
            };
            let in_mbr = table == TableKind::Hybrid && p.in_table && p.in_mbr && mirrored < 3;
            if in_mbr {
                mirrored += 1;
            }
            PartSpec {
                in_table: p.in_table,
                in_mbr,
                align: p.align_shift.map(|s| ss64 << s),
                offset: p.offset.filter(|_| offsets).map(|o| {
                    // Aligned when an alignment is asked for.
                    let align = p.align_shift.map_or(ss64, |s| ss64 << s);
                    o * ss64 / align * align
                }),
                ..PartSpec::new(&format!("p{i}"), size)
            }
        })
        .collect::<Vec<_>>();
    // Fill partitions must come last among auto-placed ones.
    let mut parts = parts;
    if let Some(f) = parts.iter().position(|p| p.size == SizeReq::Fill) {
        let fill = parts.remove(f);
        parts.push(fill);
    }
    let disk = DiskSpec {
        sector_size: ss,
        align: ss64 << align_shift,
        size: sized.map(|s| s * ss64),
        ..DiskSpec::new(table)
    };
    (disk, parts)
}

fn check_invariants(disk: &DiskSpec, parts: &[PartSpec], plan: &Plan) {
    let ss = u64::from(disk.sector_size);
    // Inside the disk, sorted, disjoint.
    for r in &plan.regions {
        assert!(
            r.size > 0 && r.end() <= plan.disk_size,
            "{r:?} outside {}",
            plan.disk_size
        );
    }
    for w in plan.regions.windows(2) {
        assert!(w[0].end() <= w[1].start, "{:?} overlaps {:?}", w[0], w[1]);
    }
    assert_eq!(plan.partitions.len(), parts.len());
    let fill_index = parts.iter().position(|p| p.size == SizeReq::Fill);
    let mut numbers = Vec::new();
    for (i, (p, spec)) in plan.partitions.iter().zip(parts).enumerate() {
        assert_eq!(p.spec, i);
        assert_eq!(p.start % ss, 0);
        assert_eq!(p.size % ss, 0);
        assert!(p.size > 0);
        let align = spec.align.unwrap_or(disk.align);
        if spec.offset.is_none() {
            assert_eq!(p.start % align, 0, "{} not aligned to {align}", p.name);
            if let Some(ebr) = p.ebr {
                assert!(ebr < p.start);
                assert_eq!(ebr % align, 0, "the EBR sits at the aligned cursor");
            }
        } else {
            assert_eq!(Some(p.start), spec.offset);
            assert_eq!(
                p.ebr.map(|e| e + ss),
                p.ebr.map(|_| p.start),
                "EBR right before"
            );
        }
        match spec.size {
            SizeReq::Exact(n) => assert_eq!(p.size, n),
            SizeReq::Auto { min, headroom } => {
                let extra = match headroom {
                    Headroom::None => 0,
                    Headroom::Bytes(b) => b,
                    Headroom::Percent(pc) => (min * u64::from(pc)).div_ceil(100),
                    Headroom::PercentAndBytes(pc, b) => (min * u64::from(pc)).div_ceil(100) + b,
                };
                assert_eq!(p.size, (min + extra).div_ceil(ss) * ss);
            }
            SizeReq::Fill => {}
        }
        if let Some(n) = p.number {
            numbers.push(n);
        }
        assert_eq!(
            p.number.is_some(),
            spec.in_table && disk.table != TableKind::None
        );
    }
    // Numbers in order: GPT 1..n; MBR 1..4, or 1..3 then 5.. when logical.
    let n = numbers.len() as u32;
    let expected: Vec<u32> = match disk.table {
        TableKind::Mbr if n > 4 => (1..=3).chain(5..=n + 1).collect(),
        _ => (1..=n).collect(),
    };
    assert_eq!(numbers, expected);
    // Fill takes the rest: up to the next region or the usable end, less
    // at most one alignment unit.
    if let Some(f) = fill_index {
        let p = &plan.partitions[f];
        let usable_end = plan.gpt.map_or(plan.disk_size, |g| g.backup_array_offset);
        let next = plan
            .regions
            .iter()
            .map(|r| r.start)
            .filter(|&s| s >= p.end())
            .fold(usable_end, u64::min);
        let align = parts[f].align.unwrap_or(disk.align);
        assert!(
            p.end() <= next && next - p.end() < align,
            "{p:?} next {next}"
        );
    }
    // An auto disk is the smallest that fits, rounded up to the alignment.
    if disk.size.is_none() {
        let backup = plan.gpt.map_or(0, |g| g.array_size + ss);
        let used = plan
            .regions
            .iter()
            .filter(|r| {
                !matches!(
                    r.kind,
                    RegionKind::BackupGptArray | RegionKind::BackupGptHeader
                )
            })
            .map(|r| r.end())
            .max()
            .unwrap_or(0);
        // A GPT disk ends on 4 KiB at least, like genimage's (docs/config.md).
        let round = if matches!(disk.table, TableKind::Gpt | TableKind::Hybrid) {
            disk.align.max(4096)
        } else {
            disk.align
        };
        assert_eq!(plan.disk_size % disk.align, 0);
        assert!(plan.disk_size >= used + backup);
        assert!(plan.disk_size - round < used + backup);
    }
    // Every encoded byte lies in a table region.
    for (offset, bytes) in encode(plan) {
        let end = offset + bytes.len() as u64;
        assert!(
            plan.regions
                .iter()
                .any(|r| r.kind.is_table() && r.start <= offset && end <= r.end()),
            "encoded {offset}..{end} is in no table region"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn auto_placed_plans_hold_their_invariants(
        table in table(),
        ss in prop_oneof![Just(512u32), Just(4096u32)],
        align_shift in 0u32..12,
        parts in prop::collection::vec(part(), 0..9),
        extra in 0u64..100_000,
    ) {
        let has_fill = parts.iter().any(|p| p.size == 2);
        // With a fill partition the disk needs a size: the sum of everything
        // with generous slack, so most cases plan.
        let sized = has_fill.then(|| {
            let per_part: u64 = parts.iter().map(|p| p.amount * 4 + 4096).sum();
            per_part + (8192 << align_shift) * (parts.len() as u64 + 2) + extra
        });
        let (disk, specs) = build(table, ss, align_shift, sized, &parts, false);
        match allocate(&disk, &specs) {
            Ok(plan) => check_invariants(&disk, &specs, &plan),
            // Only a fill that found no room, or an empty disk, may fail here.
            Err(diags) => prop_assert!(
                diags.iter().all(|d| d.message.contains("fill")
                    || d.message.contains("rest of the disk")
                    || d.message.contains("would be empty")),
                "{diags:#?}"
            ),
        }
    }

    #[test]
    fn explicit_offsets_plan_cleanly_or_are_refused(
        table in table(),
        ss in prop_oneof![Just(512u32), Just(4096u32)],
        align_shift in 0u32..12,
        parts in prop::collection::vec(part(), 0..9),
        sized in prop::option::of(1u64 << 16..1 << 24),
    ) {
        let sized = sized.or(parts.iter().any(|p| p.size == 2).then_some(1 << 22));
        let (disk, specs) = build(table, ss, align_shift, sized, &parts, true);
        if let Ok(plan) = allocate(&disk, &specs) {
            check_invariants(&disk, &specs, &plan);
        }
    }

    #[test]
    fn nothing_panics_whatever_the_numbers(
        table in table(),
        ss in prop_oneof![Just(512u32), Just(4096u32), Just(1000u32)],
        align in prop_oneof![Just(0u64), Just(1u64 << 20), any::<u64>()],
        size in prop::option::of(prop_oneof![any::<u64>(), 0u64..1u64 << 40]),
        entries in prop_oneof![Just(128u32), any::<u32>()],
        specs in prop::collection::vec(
            (
                prop_oneof![
                    any::<u64>().prop_map(SizeReq::Exact),
                    (any::<u64>(), any::<u32>()).prop_map(|(min, p)| SizeReq::Auto { min, headroom: Headroom::Percent(p) }),
                    (any::<u64>(), any::<u64>()).prop_map(|(min, b)| SizeReq::Auto { min, headroom: Headroom::Bytes(b) }),
                    Just(SizeReq::Fill),
                ],
                prop::option::of(prop_oneof![any::<u64>(), (0u64..1 << 30).prop_map(|s| s * 512)]),
                prop::option::of(any::<u64>()),
                any::<bool>(),
                any::<bool>(),
                prop::collection::vec((any::<u64>(), any::<u64>()), 0..2),
            ),
            0..7,
        ),
    ) {
        let parts: Vec<PartSpec> = specs
            .into_iter()
            .enumerate()
            .map(|(i, (size, offset, align, in_table, in_mbr, holes))| PartSpec {
                offset,
                align,
                in_table,
                in_mbr,
                holes,
                content_min: 0,
                ..PartSpec::new(&format!("p{i}"), size)
            })
            .collect();
        let disk = DiskSpec { sector_size: ss, align, size, gpt_entries: entries, ..DiskSpec::new(table) };
        if let Ok(plan) = allocate(&disk, &parts) {
            let _ = encode(&plan);
            let _ = composer::plan::render_text(&plan, &parts);
        }
    }
}
