"""check_policy_file: exit codes and printed lines for ``auth-service policy check``."""

from pathlib import Path

from auth_service.policy import check_policy_file

from .samples import CONTRACT_POLICY


def test_valid_file_exits_zero(tmp_path: Path) -> None:
    """A valid file gives exit code 0 and a one-line summary."""
    path = tmp_path / "policy.toml"
    path.write_text(CONTRACT_POLICY)
    assert check_policy_file(path) == (0, [f"{path}: ok (3 rules)"])


def test_invalid_file_lists_every_error_with_line_and_rule(tmp_path: Path, monkeypatch) -> None:
    """Each error is one ``file:line: rule 'name': message`` line, exit code 1."""
    monkeypatch.chdir(tmp_path)
    Path("policy.toml").write_text(
        '[[rules]]\nname = "orders writes"\npaths = ["/orders/**"]\n'
        'require_role = ["w"]\nmethods = []\n'
    )
    code, lines = check_policy_file("policy.toml")
    assert code == 1
    assert lines == [
        "policy.toml:4: rule 'orders writes': unknown field 'require_role' "
        "(did you mean 'require_roles'?)",
        "policy.toml:5: rule 'orders writes': methods must not be empty "
        "(omit it to match any method)",
    ]


def test_unreadable_and_non_utf8_files_exit_one(tmp_path: Path) -> None:
    """A missing file or undecodable bytes are reported, not raised."""
    code, lines = check_policy_file(tmp_path / "absent.toml")
    assert code == 1
    assert "cannot read" in lines[0]
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"name = '\xff'\n")
    assert check_policy_file(binary) == (1, [f"{binary}: not valid UTF-8 (byte 8)"])
