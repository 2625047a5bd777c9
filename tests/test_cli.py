from click.testing import CliRunner

from harness.cli import main


def test_help_explains_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("snapshot", "register"):
        assert command in result.output
    sub = CliRunner().invoke(main, ["register", "--help"])
    assert "--signature" in sub.output and "gateway" in sub.output and "--tracking-uri" in sub.output


def test_snapshot_tiny_prints_the_folder(tmp_path):
    result = CliRunner().invoke(main, ["snapshot", "tiny", str(tmp_path / "s"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "s")


def test_negative_seed_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["snapshot", "tiny", str(tmp_path / "s"), "--seed", "-1"])
    assert result.exit_code == 2 and "--seed" in result.output


def test_download_offline_is_a_one_line_error(tmp_path, monkeypatch, free_port):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port}")
    result = CliRunner().invoke(main, ["snapshot", "download", "mosaicml/mpt-7b-instruct", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "cannot reach the model hub" in result.output
