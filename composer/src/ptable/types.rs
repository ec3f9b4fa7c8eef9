//! Partition types: the shorthands users write in `type:` and what they mean
//! in each table format.
//!
//! Most shorthands map to both a GPT partition type GUID and an MBR type
//! byte, so one description can switch `table: gpt` to `table: mbr` (or
//! `hybrid`) without touching its partitions. GUIDs are those of the UAPI
//! group's Discoverable Partitions Specification
//! (<https://uapi-group.org/specifications/specs/discoverable_partitions_specification/>)
//! and UEFI 2.10 §5.3.3 (ESP); they were checked against util-linux's
//! `sfdisk --label gpt -T` list and genimage 19's `partition-type-uuid`
//! shortcuts (all of which are accepted, tested against the list recorded
//! in `tests/layouts/`). MBR bytes follow util-linux (`sfdisk --label dos -T`).
//!
//! Besides shorthands, `type:` accepts a GUID (`0fc63daf-8483-4772-8e79-3d69d8477de4`)
//! or an MBR byte (`0x83`). A GUID gets the MBR byte of the first shorthand
//! with that GUID, an MBR byte the GUID of the first shorthand with that
//! byte. A value without the other form has only the one it names: the
//! planner refuses it in a table of the other format (with `mbr-type` as
//! the fix for a GUID in an MBR), rather than writing "Linux data" where
//! the user named something else.
//!
//! Rejected: per-architecture magic (`root` meaning "root for the build
//! host's architecture", as systemd-repart does) — image-composer builds
//! images for other machines, so the architecture is always written out.
//! Also rejected: MBR bytes that describe the table itself (0x00 unused,
//! 0x05/0x0f/0x85 extended, 0xee GPT protective): image-composer writes
//! those entries; a partition that claims one would corrupt the table.

use crate::ids::Uuid;

/// What a partition holds, in each table format it has a form in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PartType {
    /// The GPT partition type GUID; `None` for an MBR byte no shorthand has.
    pub gpt: Option<Uuid>,
    /// The MBR partition type byte; `None` for a GPT-only type.
    pub mbr: Option<u8>,
}

impl PartType {
    /// Linux filesystem data, the type of a partition without `type:`.
    pub fn linux() -> Self {
        PartType {
            gpt: Some(known_guid(GUID_LINUX)),
            mbr: Some(MBR_LINUX),
        }
    }

    /// The value as the user would write it for the form it has: the
    /// shorthand, else the GUID, else the byte (`0xda`).
    pub fn describe(self) -> String {
        match (self.gpt, self.mbr) {
            (Some(g), _) => SHORTHANDS
                .iter()
                .find(|(_, guid, _)| known_guid(guid) == g)
                .map_or_else(|| g.to_string(), |(name, _, _)| (*name).to_string()),
            (None, Some(b)) => format!("0x{b:02x}"),
            (None, None) => String::new(),
        }
    }
}

/// Why a `type:` value is not a partition type (see [`check`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("is not a partition type")]
    Unknown,
    #[error("is the nil GUID, which GPT uses for unused entries")]
    NilGuid,
    #[error("is the MBR type byte of {0}, which image-composer writes itself")]
    Reserved(&'static str),
}

/// MBR type byte for Linux filesystem data.
const MBR_LINUX: u8 = 0x83;

/// The GPT "Linux filesystem data" GUID.
const GUID_LINUX: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

/// MBR bytes a partition may not use, with what they mean.
const RESERVED_MBR: &[(u8, &str)] = &[
    (0x00, "an unused entry"),
    (0x05, "an extended partition"),
    (0x0f, "an extended partition"),
    (0x85, "an extended partition"),
    (0xee, "the GPT protective entry"),
];

/// Shorthand, GPT type GUID, MBR byte (`None`: the type has no MBR form and
/// cannot be used in an MBR entry without `mbr-type`). The first shorthand
/// with a given GUID or byte is the one raw values map back to and the plan
/// shows; the first [`COMMON`] are the ones help texts list.
pub const SHORTHANDS: &[(&str, &str, Option<u8>)] = &[
    ("linux", GUID_LINUX, Some(MBR_LINUX)),
    // EFI System Partition: MBR 0xef ("EFI (FAT-12/16/32)").
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", Some(0xef)),
    // Extended Boot Loader Partition: MBR 0xea (the spec's "Linux extended boot").
    (
        "xbootldr",
        "bc13c2ff-59e6-4262-a352-b275fd6f7172",
        Some(0xea),
    ),
    ("swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", Some(0x82)),
    (
        "home",
        "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
        Some(MBR_LINUX),
    ),
    (
        "srv",
        "3b8f8425-20e0-4f3b-907f-1a25a76f98e8",
        Some(MBR_LINUX),
    ),
    (
        "var",
        "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
        Some(MBR_LINUX),
    ),
    (
        "tmp",
        "7ec6f557-3bc5-4aca-b293-16ef5df639d1",
        Some(MBR_LINUX),
    ),
    // FAT boot partitions of boards whose ROM or firmware reads MBR (Raspberry
    // Pi, many SoCs): "W95 FAT32 (LBA)" on MBR, Microsoft basic data on GPT.
    ("fat32", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", Some(0x0c)),
    ("lvm", "e6d6d379-f507-44c2-a23c-238f2a3df928", Some(0x8e)),
    ("raid", "a19d880f-05fc-4d3b-a006-743f0f84911e", Some(0xfd)),
    // The Discoverable Partitions Specification's root and /usr partitions:
    // Linux data (0x83) on MBR.
    (
        "root-x86-64",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        Some(MBR_LINUX),
    ),
    (
        "root-x86",
        "44479540-f297-41b2-9af7-d131d5f0458a",
        Some(MBR_LINUX),
    ),
    (
        "root-arm64",
        "b921b045-1df0-41c3-af44-4c6f280d3fae",
        Some(MBR_LINUX),
    ),
    (
        "root-arm",
        "69dad710-2ce4-4e3c-b16c-21a1d49abed3",
        Some(MBR_LINUX),
    ),
    (
        "root-riscv64",
        "72ec70a6-cf74-40e6-bd49-4bda08e8f224",
        Some(MBR_LINUX),
    ),
    (
        "root-riscv32",
        "60d5a7fe-8e7d-435c-b714-3dd8162144e1",
        Some(MBR_LINUX),
    ),
    (
        "root-alpha",
        "6523f8ae-3eb1-4e2a-a05a-18b695ae656f",
        Some(MBR_LINUX),
    ),
    (
        "root-arc",
        "d27f46ed-2919-4cb8-bd25-9531f3c16534",
        Some(MBR_LINUX),
    ),
    (
        "root-ia64",
        "993d8d3d-f80e-4225-855a-9daf8ed7ea97",
        Some(MBR_LINUX),
    ),
    (
        "root-loongarch64",
        "77055800-792c-4f94-b39a-98c91b762bb6",
        Some(MBR_LINUX),
    ),
    (
        "root-mips",
        "e9434544-6e2c-47cc-bae2-12d6deafb44c",
        Some(MBR_LINUX),
    ),
    (
        "root-mips64",
        "d113af76-80ef-41b4-bdb6-0cff4d3d4a25",
        Some(MBR_LINUX),
    ),
    (
        "root-mips-le",
        "37c58c8a-d913-4156-a25f-48b1b64e07f0",
        Some(MBR_LINUX),
    ),
    (
        "root-mips64-le",
        "700bda43-7a34-4507-b179-eeb93d7a7ca3",
        Some(MBR_LINUX),
    ),
    (
        "root-parisc",
        "1aacdb3b-5444-4138-bd9e-e5c2239b2346",
        Some(MBR_LINUX),
    ),
    (
        "root-ppc",
        "1de3f1ef-fa98-47b5-8dcd-4a860a654d78",
        Some(MBR_LINUX),
    ),
    (
        "root-ppc64",
        "912ade1d-a839-4913-8964-a10eee08fbd2",
        Some(MBR_LINUX),
    ),
    (
        "root-ppc64-le",
        "c31c45e6-3f39-412e-80fb-4809c4980599",
        Some(MBR_LINUX),
    ),
    (
        "root-s390",
        "08a7acea-624c-4a20-91e8-6e0fa67d23f9",
        Some(MBR_LINUX),
    ),
    (
        "root-s390x",
        "5eead9a9-fe09-4a1e-a1d7-520d00531306",
        Some(MBR_LINUX),
    ),
    (
        "root-tilegx",
        "c50cdd70-3862-4cc3-90e1-809a8c93ee2c",
        Some(MBR_LINUX),
    ),
    (
        "usr-x86-64",
        "8484680c-9521-48c6-9c11-b0720656f69e",
        Some(MBR_LINUX),
    ),
    (
        "usr-x86",
        "75250d76-8cc6-458e-bd66-bd47cc81a812",
        Some(MBR_LINUX),
    ),
    (
        "usr-arm64",
        "b0e01050-ee5f-4390-949a-9101b17104e9",
        Some(MBR_LINUX),
    ),
    (
        "usr-arm",
        "7d0359a3-02b3-4f0a-865c-654403e70625",
        Some(MBR_LINUX),
    ),
    (
        "usr-riscv64",
        "beaec34b-8442-439b-a40b-984381ed097d",
        Some(MBR_LINUX),
    ),
    (
        "usr-riscv32",
        "b933fb22-5c3f-4f91-af90-e2bb0fa50702",
        Some(MBR_LINUX),
    ),
    (
        "usr-alpha",
        "e18cf08c-33ec-4c0d-8246-c6c6fb3da024",
        Some(MBR_LINUX),
    ),
    (
        "usr-arc",
        "7978a683-6316-4922-bbee-38bff5a2fecc",
        Some(MBR_LINUX),
    ),
    (
        "usr-ia64",
        "4301d2a6-4e3b-4b2a-bb94-9e0b2c4225ea",
        Some(MBR_LINUX),
    ),
    (
        "usr-loongarch64",
        "e611c702-575c-4cbe-9a46-434fa0bf7e3f",
        Some(MBR_LINUX),
    ),
    (
        "usr-mips",
        "773b2abc-2a99-4398-8bf5-03baac40d02b",
        Some(MBR_LINUX),
    ),
    (
        "usr-mips64",
        "57e13958-7331-4365-8e6e-35eeee17c61b",
        Some(MBR_LINUX),
    ),
    (
        "usr-mips-le",
        "0f4868e9-9952-4706-979f-3ed3a473e947",
        Some(MBR_LINUX),
    ),
    (
        "usr-mips64-le",
        "c97c1f32-ba06-40b4-9f22-236061b08aa8",
        Some(MBR_LINUX),
    ),
    (
        "usr-parisc",
        "dc4a4480-6917-4262-a4ec-db9384949f25",
        Some(MBR_LINUX),
    ),
    (
        "usr-ppc",
        "7d14fec5-cc71-415d-9d6c-06bf0b3c3eaf",
        Some(MBR_LINUX),
    ),
    (
        "usr-ppc64",
        "2c9739e2-f068-46b3-9fd0-01c5a9afbcca",
        Some(MBR_LINUX),
    ),
    (
        "usr-ppc64-le",
        "15bb03af-77e7-4d4a-b12b-c0d084f7491c",
        Some(MBR_LINUX),
    ),
    (
        "usr-s390",
        "cd0f869b-d0fb-4ca0-b141-9ea87cc78d66",
        Some(MBR_LINUX),
    ),
    (
        "usr-s390x",
        "8a4f5770-50aa-4ed3-874a-99b710db6fea",
        Some(MBR_LINUX),
    ),
    (
        "usr-tilegx",
        "55497029-c7c1-44cc-aa39-815ed1558630",
        Some(MBR_LINUX),
    ),
    (
        "root-x86-64-verity",
        "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
        None,
    ),
    (
        "root-x86-verity",
        "d13c5d3b-b5d1-422a-b29f-9454fdc89d76",
        None,
    ),
    (
        "root-arm64-verity",
        "df3300ce-d69f-4c92-978c-9bfb0f38d820",
        None,
    ),
    (
        "root-arm-verity",
        "7386cdf2-203c-47a9-a498-f2ecce45a2d6",
        None,
    ),
    (
        "root-riscv64-verity",
        "b6ed5582-440b-4209-b8da-5ff7c419ea3d",
        None,
    ),
    (
        "root-riscv32-verity",
        "ae0253be-1167-4007-ac68-43926c14c5de",
        None,
    ),
    (
        "root-alpha-verity",
        "fc56d9e9-e6e5-4c06-be32-e74407ce09a5",
        None,
    ),
    (
        "root-arc-verity",
        "24b2d975-0f97-4521-afa1-cd531e421b8d",
        None,
    ),
    (
        "root-ia64-verity",
        "86ed10d5-b607-45bb-8957-d350f23d0571",
        None,
    ),
    (
        "root-loongarch64-verity",
        "f3393b22-e9af-4613-a948-9d3bfbd0c535",
        None,
    ),
    (
        "root-mips-verity",
        "7a430799-f711-4c7e-8e5b-1d685bd48607",
        None,
    ),
    (
        "root-mips64-verity",
        "579536f8-6a33-4055-a95a-df2d5e2c42a8",
        None,
    ),
    (
        "root-mips-le-verity",
        "d7d150d2-2a04-4a33-8f12-16651205ff7b",
        None,
    ),
    (
        "root-mips64-le-verity",
        "16b417f8-3e06-4f57-8dd2-9b5232f41aa6",
        None,
    ),
    (
        "root-parisc-verity",
        "d212a430-fbc5-49f9-a983-a7feef2b8d0e",
        None,
    ),
    (
        "root-ppc-verity",
        "98cfe649-1588-46dc-b2f0-add147424925",
        None,
    ),
    (
        "root-ppc64-verity",
        "9225a9a3-3c19-4d89-b4f6-eeff88f17631",
        None,
    ),
    (
        "root-ppc64-le-verity",
        "906bd944-4589-4aae-a4e4-dd983917446a",
        None,
    ),
    (
        "root-s390-verity",
        "7ac63b47-b25c-463b-8df8-b4a94e6c90e1",
        None,
    ),
    (
        "root-s390x-verity",
        "b325bfbe-c7be-4ab8-8357-139e652d2f6b",
        None,
    ),
    (
        "root-tilegx-verity",
        "966061ec-28e4-4b2e-b4a5-1f0a825a1d84",
        None,
    ),
    (
        "usr-x86-64-verity",
        "77ff5f63-e7b6-4633-acf4-1565b864c0e6",
        None,
    ),
    (
        "usr-x86-verity",
        "8f461b0d-14ee-4e81-9aa9-049b6fb97abd",
        None,
    ),
    (
        "usr-arm64-verity",
        "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e",
        None,
    ),
    (
        "usr-arm-verity",
        "c215d751-7bcd-4649-be90-6627490a4c05",
        None,
    ),
    (
        "usr-riscv64-verity",
        "8f1056be-9b05-47c4-81d6-be53128e5b54",
        None,
    ),
    (
        "usr-riscv32-verity",
        "cb1ee4e3-8cd0-4136-a0a4-aa61a32e8730",
        None,
    ),
    (
        "usr-alpha-verity",
        "8cce0d25-c0d0-4a44-bd87-46331bf1df67",
        None,
    ),
    (
        "usr-arc-verity",
        "fca0598c-d880-4591-8c16-4eda05c7347c",
        None,
    ),
    (
        "usr-ia64-verity",
        "6a491e03-3be7-4545-8e38-83320e0ea880",
        None,
    ),
    (
        "usr-loongarch64-verity",
        "f46b2c26-59ae-48f0-9106-c50ed47f673d",
        None,
    ),
    (
        "usr-mips-verity",
        "6e5a1bc8-d223-49b7-bca8-37a5fcceb996",
        None,
    ),
    (
        "usr-mips64-verity",
        "81cf9d90-7458-4df4-8dcf-c8a3a404f09b",
        None,
    ),
    (
        "usr-mips-le-verity",
        "46b98d8d-b55c-4e8f-aab3-37fca7f80752",
        None,
    ),
    (
        "usr-mips64-le-verity",
        "3c3d61fe-b5f3-414d-bb71-8739a694a4ef",
        None,
    ),
    (
        "usr-parisc-verity",
        "5843d618-ec37-48d7-9f12-cea8e08768b2",
        None,
    ),
    (
        "usr-ppc-verity",
        "df765d00-270e-49e5-bc75-f47bb2118b09",
        None,
    ),
    (
        "usr-ppc64-verity",
        "bdb528a5-a259-475f-a87d-da53fa736a07",
        None,
    ),
    (
        "usr-ppc64-le-verity",
        "ee2b9983-21e8-4153-86d9-b6901a54d1ce",
        None,
    ),
    (
        "usr-s390-verity",
        "b663c618-e7bc-4d6d-90aa-11b756bb1797",
        None,
    ),
    (
        "usr-s390x-verity",
        "31741cc4-1a2a-4111-a581-e00b447d2d06",
        None,
    ),
    (
        "usr-tilegx-verity",
        "2fb4bf56-07fa-42da-8132-6b139f2026ae",
        None,
    ),
    (
        "root-x86-64-verity-sig",
        "41092b05-9fc8-4523-994f-2def0408b176",
        None,
    ),
    (
        "root-x86-verity-sig",
        "5996fc05-109c-48de-808b-23fa0830b676",
        None,
    ),
    (
        "root-arm64-verity-sig",
        "6db69de6-29f4-4758-a7a5-962190f00ce3",
        None,
    ),
    (
        "root-arm-verity-sig",
        "42b0455f-eb11-491d-98d3-56145ba9d037",
        None,
    ),
    (
        "root-riscv64-verity-sig",
        "efe0f087-ea8d-4469-821a-4c2a96a8386a",
        None,
    ),
    (
        "root-riscv32-verity-sig",
        "3a112a75-8729-4380-b4cf-764d79934448",
        None,
    ),
    (
        "root-alpha-verity-sig",
        "d46495b7-a053-414f-80f7-700c99921ef8",
        None,
    ),
    (
        "root-arc-verity-sig",
        "143a70ba-cbd3-4f06-919f-6c05683a78bc",
        None,
    ),
    (
        "root-ia64-verity-sig",
        "e98b36ee-32ba-4882-9b12-0ce14655f46a",
        None,
    ),
    (
        "root-loongarch64-verity-sig",
        "5afb67eb-ecc8-4f85-ae8e-ac1e7c50e7d0",
        None,
    ),
    (
        "root-mips-verity-sig",
        "bba210a2-9c5d-45ee-9e87-ff2ccbd002d0",
        None,
    ),
    (
        "root-mips64-verity-sig",
        "43ce94d4-0f3d-4999-8250-b9deafd98e6e",
        None,
    ),
    (
        "root-mips-le-verity-sig",
        "c919cc1f-4456-4eff-918c-f75e94525ca5",
        None,
    ),
    (
        "root-mips64-le-verity-sig",
        "904e58ef-5c65-4a31-9c57-6af5fc7c5de7",
        None,
    ),
    (
        "root-parisc-verity-sig",
        "15de6170-65d3-431c-916e-b0dcd8393f25",
        None,
    ),
    (
        "root-ppc-verity-sig",
        "1b31b5aa-add9-463a-b2ed-bd467fc857e7",
        None,
    ),
    (
        "root-ppc64-verity-sig",
        "f5e2c20c-45b2-4ffa-bce9-2a60737e1aaf",
        None,
    ),
    (
        "root-ppc64-le-verity-sig",
        "d4a236e7-e873-4c07-bf1d-bf6cf7f1c3c6",
        None,
    ),
    (
        "root-s390-verity-sig",
        "3482388e-4254-435a-a241-766a065f9960",
        None,
    ),
    (
        "root-s390x-verity-sig",
        "c80187a5-73a3-491a-901a-017c3fa953e9",
        None,
    ),
    (
        "root-tilegx-verity-sig",
        "b3671439-97b0-4a53-90f7-2d5a8f3ad47b",
        None,
    ),
    (
        "usr-x86-64-verity-sig",
        "e7bb33fb-06cf-4e81-8273-e543b413e2e2",
        None,
    ),
    (
        "usr-x86-verity-sig",
        "974a71c0-de41-43c3-be5d-5c5ccd1ad2c0",
        None,
    ),
    (
        "usr-arm64-verity-sig",
        "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a",
        None,
    ),
    (
        "usr-arm-verity-sig",
        "d7ff812f-37d1-4902-a810-d76ba57b975a",
        None,
    ),
    (
        "usr-riscv64-verity-sig",
        "d2f9000a-7a18-453f-b5cd-4d32f77a7b32",
        None,
    ),
    (
        "usr-riscv32-verity-sig",
        "c3836a13-3137-45ba-b583-b16c50fe5eb4",
        None,
    ),
    (
        "usr-alpha-verity-sig",
        "5c6e1c76-076a-457a-a0fe-f3b4cd21ce6e",
        None,
    ),
    (
        "usr-arc-verity-sig",
        "94f9a9a1-9971-427a-a400-50cb297f0f35",
        None,
    ),
    (
        "usr-ia64-verity-sig",
        "8de58bc2-2a43-460d-b14e-a76e4a17b47f",
        None,
    ),
    (
        "usr-loongarch64-verity-sig",
        "b024f315-d330-444c-8461-44bbde524e99",
        None,
    ),
    (
        "usr-mips-verity-sig",
        "97ae158d-f216-497b-8057-f7f905770f54",
        None,
    ),
    (
        "usr-mips64-verity-sig",
        "05816ce2-dd40-4ac6-a61d-37d32dc1ba7d",
        None,
    ),
    (
        "usr-mips-le-verity-sig",
        "3e23ca0b-a4bc-4b4e-8087-5ab6a26aa8a9",
        None,
    ),
    (
        "usr-mips64-le-verity-sig",
        "f2c2c7ee-adcc-4351-b5c6-ee9816b66e16",
        None,
    ),
    (
        "usr-parisc-verity-sig",
        "450dd7d1-3224-45ec-9cf2-a43a346d71ee",
        None,
    ),
    (
        "usr-ppc-verity-sig",
        "7007891d-d371-4a80-86a4-5cb875b9302e",
        None,
    ),
    (
        "usr-ppc64-verity-sig",
        "0b888863-d7f8-4d9e-9766-239fce4d58af",
        None,
    ),
    (
        "usr-ppc64-le-verity-sig",
        "c8bfbd1e-268e-4521-8bba-bf314c399557",
        None,
    ),
    (
        "usr-s390-verity-sig",
        "17440e4f-a8d0-467f-a46e-3912ae6ef2c5",
        None,
    ),
    (
        "usr-s390x-verity-sig",
        "3f324816-667b-46ae-86ee-9b0c0c6c11b4",
        None,
    ),
    (
        "usr-tilegx-verity-sig",
        "4ede75e2-6ccc-4cc8-b9c7-70334b087510",
        None,
    ),
    (
        "user-home",
        "773f91ef-66d4-49b5-bd83-d683bf40ad16",
        Some(MBR_LINUX),
    ),
    // Boot loader environments and state (barebox, U-Boot): GPT only.
    (
        "barebox-state",
        "4778ed65-bf42-45fa-9c5b-287a1dc4aab1",
        None,
    ),
    ("barebox-env", "6c3737f2-07f8-45d1-ad45-15d260aab24d", None),
    ("u-boot-env", "3de21764-95bd-54bd-a5c3-4abe786f38a8", None),
    // Aliases: the names genimage 19's `partition-type-uuid` accepts for
    // the types above, so its configurations translate word for word.
    ("linux-generic", GUID_LINUX, Some(MBR_LINUX)),
    (
        "basic-data",
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
        Some(0x0c),
    ),
    ("L", GUID_LINUX, Some(MBR_LINUX)),
    ("S", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", Some(0x82)),
    ("H", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", Some(MBR_LINUX)),
    ("U", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", Some(0xef)),
    ("uefi", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", Some(0xef)),
    ("R", "a19d880f-05fc-4d3b-a006-743f0f84911e", Some(0xfd)),
    ("V", "e6d6d379-f507-44c2-a23c-238f2a3df928", Some(0x8e)),
    ("F", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", Some(0x0c)),
];

/// The shorthands help texts list; every one is in [`SHORTHANDS`] (tested),
/// which also has the other architectures, the verity types and the aliases.
pub const COMMON: &[&str] = &[
    "linux",
    "esp",
    "xbootldr",
    "swap",
    "home",
    "srv",
    "var",
    "tmp",
    "fat32",
    "lvm",
    "raid",
    "root-x86-64",
    "root-arm64",
    "root-arm",
    "root-riscv64",
    "usr-x86-64",
    "usr-arm64",
    "u-boot-env",
];

/// The shorthands, for help texts and "did you mean" suggestions.
pub fn names() -> &'static [&'static str] {
    const NAMES: [&str; SHORTHANDS.len()] = {
        let mut out = [""; SHORTHANDS.len()];
        let mut i = 0;
        while i < SHORTHANDS.len() {
            out[i] = SHORTHANDS[i].0;
            i += 1;
        }
        out
    };
    &NAMES
}

/// The partition type a `type:` value names, or `None` (see [`check`] for why).
pub fn lookup(name: &str) -> Option<PartType> {
    check(name).ok()
}

/// The partition type a `type:` value names: a shorthand (case-insensitive),
/// a GUID, or an MBR byte written `0x83`.
pub fn check(name: &str) -> Result<PartType, TypeError> {
    let name = name.trim();
    if let Some(&(_, guid, mbr)) = SHORTHANDS
        .iter()
        .find(|(short, _, _)| short.eq_ignore_ascii_case(name))
    {
        return Ok(PartType {
            gpt: Some(known_guid(guid)),
            mbr,
        });
    }
    if let Some(gpt) = Uuid::parse(name) {
        if gpt.is_nil() {
            return Err(TypeError::NilGuid);
        }
        let mbr = SHORTHANDS
            .iter()
            .find(|(_, guid, _)| known_guid(guid) == gpt)
            .and_then(|&(_, _, mbr)| mbr);
        return Ok(PartType {
            gpt: Some(gpt),
            mbr,
        });
    }
    let hex = name
        .strip_prefix("0x")
        .or_else(|| name.strip_prefix("0X"))
        .ok_or(TypeError::Unknown)?;
    if hex.is_empty() || hex.len() > 2 {
        return Err(TypeError::Unknown);
    }
    let mbr = u8::from_str_radix(hex, 16).map_err(|_| TypeError::Unknown)?;
    if let Some(&(_, what)) = RESERVED_MBR.iter().find(|(byte, _)| *byte == mbr) {
        return Err(TypeError::Reserved(what));
    }
    let gpt = SHORTHANDS
        .iter()
        .find(|(_, _, byte)| *byte == Some(mbr))
        .map(|&(_, guid, _)| known_guid(guid));
    Ok(PartType {
        gpt,
        mbr: Some(mbr),
    })
}

/// The shorthand closest to a mistyped `type:` value (`roo-arm64` →
/// `root-arm64`), for a "did you mean" hint; `None` when nothing is close.
pub fn suggest(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    names()
        .iter()
        .map(|&short| (edit_distance(&name, short), short))
        .filter(|&(d, short)| d > 0 && d <= short.len().div_ceil(3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, short)| short)
}

/// Levenshtein distance over bytes (shorthands are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a GUID from [`SHORTHANDS`]; they are constants, checked by a test,
/// so a failure here could only be a typo caught before release.
fn known_guid(text: &str) -> Uuid {
    Uuid::parse(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shorthand_has_a_valid_guid() {
        for (name, guid, _) in SHORTHANDS {
            let parsed = Uuid::parse(guid).unwrap();
            assert!(!parsed.is_nil(), "{name}");
            assert_eq!(
                parsed.to_string(),
                *guid,
                "{name}: write GUIDs in lower case"
            );
        }
        assert_eq!(names().len(), SHORTHANDS.len());
        assert_eq!(names()[0], "linux");
    }

    #[test]
    fn shorthands_map_to_both_formats() {
        let esp = lookup("esp").unwrap();
        assert_eq!(
            esp.gpt.unwrap().to_string(),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
        );
        assert_eq!(esp.mbr, Some(0xef));
        assert_eq!(lookup("ESP"), Some(esp));
        let root = lookup("root-arm64").unwrap();
        assert_eq!(
            root.gpt.unwrap().to_string(),
            "b921b045-1df0-41c3-af44-4c6f280d3fae"
        );
        assert_eq!(root.mbr, Some(0x83));
        assert_eq!(lookup("swap").unwrap().mbr, Some(0x82));
        assert_eq!(lookup("linux"), lookup("linux-generic"));
        assert_eq!(lookup("linux"), Some(PartType::linux()));
    }

    #[test]
    fn genimage_aliases_name_the_same_types() {
        for (alias, name) in [
            ("L", "linux"),
            ("l", "linux"),
            ("S", "swap"),
            ("H", "home"),
            ("U", "esp"),
            ("uefi", "esp"),
            ("R", "raid"),
            ("V", "lvm"),
            ("F", "fat32"),
        ] {
            assert_eq!(lookup(alias), lookup(name), "{alias}");
        }
        let env = lookup("u-boot-env").unwrap();
        assert_eq!(env.mbr, None, "GPT only");
        assert_eq!(lookup("root-arm64-verity").unwrap().mbr, None);
    }

    #[test]
    fn raw_values_have_the_other_form_only_when_a_shorthand_has_both() {
        let t = lookup("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(t, lookup("esp").unwrap());
        let custom = lookup("12345678-1234-4234-8234-123456789abc").unwrap();
        assert_eq!(custom.mbr, None);
        assert_eq!(custom.describe(), "12345678-1234-4234-8234-123456789abc");
        assert_eq!(lookup("0x0c"), lookup("fat32"));
        assert_eq!(lookup("0x83"), lookup("linux"));
        let other = lookup("0xda").unwrap();
        assert_eq!(other.mbr, Some(0xda));
        assert_eq!(other.gpt, None);
        assert_eq!(other.describe(), "0xda");
        assert_eq!(lookup("0x0c").unwrap().describe(), "fat32");
    }

    #[test]
    fn every_genimage_19_shortcut_names_the_same_guid() {
        let list = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/layouts/genimage-19-shortcuts.txt");
        let list = std::fs::read_to_string(list).unwrap();
        let mut count = 0;
        for line in list.lines().filter(|l| !l.starts_with('#')) {
            let (name, guid) = line.split_once(' ').unwrap();
            let ours = lookup(name).unwrap_or_else(|| panic!("{name} is not a shorthand"));
            assert_eq!(ours.gpt.unwrap().to_string(), guid, "{name}");
            count += 1;
        }
        assert_eq!(count, 150, "the recorded list is genimage 19's whole table");
    }

    #[test]
    fn help_names_are_shorthands() {
        for name in COMMON {
            assert!(names().contains(name), "{name}");
        }
    }

    #[test]
    fn suggests_the_closest_shorthand() {
        assert_eq!(suggest("roo-arm64"), Some("root-arm64"));
        assert_eq!(suggest("ESP2"), Some("esp"));
        assert_eq!(suggest("swp"), Some("swap"));
        assert_eq!(suggest("root-aarch64"), Some("root-arm64"));
        assert_eq!(suggest("esp"), None, "an exact name needs no suggestion");
        assert_eq!(suggest("completely-different"), None);
    }

    #[test]
    fn rejects_what_would_corrupt_the_table_or_is_not_a_type() {
        assert_eq!(
            check("0x0f"),
            Err(TypeError::Reserved("an extended partition"))
        );
        assert_eq!(
            check("0xee"),
            Err(TypeError::Reserved("the GPT protective entry"))
        );
        assert_eq!(check("0x00"), Err(TypeError::Reserved("an unused entry")));
        assert_eq!(
            check("00000000-0000-0000-0000-000000000000"),
            Err(TypeError::NilGuid)
        );
        for bad in ["", "0x", "0x123", "83", "rootfs", "0xzz"] {
            assert_eq!(check(bad), Err(TypeError::Unknown), "{bad:?}");
        }
        assert_eq!(
            check("0x05").unwrap_err().to_string(),
            "is the MBR type byte of an extended partition, which image-composer writes itself"
        );
    }
}
