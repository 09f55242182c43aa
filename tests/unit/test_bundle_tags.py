"""keepalive-patch bundle's platform tags: pip matches them exactly, so older ones are asked."""

from keepalive_patch.bundle import platform_tags


def test_glibc_tags_reach_down_to_manylinux1_with_the_legacy_aliases() -> None:
    tags = platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64"
    assert tags[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert tags.index("manylinux2014_x86_64") == tags.index("manylinux_2_17_x86_64") + 1
    assert "manylinux2010_x86_64" in tags
    assert all(tag.endswith("_x86_64") for tag in tags)


def test_musl_tags_and_anything_else() -> None:
    assert platform_tags("musllinux_1_2_aarch64") == [
        "musllinux_1_2_aarch64",
        "musllinux_1_1_aarch64",
    ]
    assert platform_tags("macosx_11_0_arm64") == ["macosx_11_0_arm64"]
