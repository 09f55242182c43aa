import keepalive_patch


def test_applied_on_import() -> None:
    assert keepalive_patch.is_applied()
