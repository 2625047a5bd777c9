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


def _raising(error):
    import click

    from harness.cli import _Command

    @click.command(cls=_Command)
    @click.option("--duration", type=float, default=1.0)
    def command(duration):
        raise error

    return command


def test_library_errors_map_to_one_exit_code_each():
    """The CLI's one mapping (harness.cli._exit_for): a setting names its option; a problem
    found after parsing is one line; an interrupt exits 128+N; anything else is a bug."""
    import signal

    import pytest

    from harness import ConfigError, ReportDirError, StoreUnreachable
    from harness.model.snapshot import SnapshotError
    from harness.serving.processes import Interrupted

    cases = [
        (ConfigError("duration_s", "duration_s=0 is invalid: allowed (0, 3600]"), 2, "for --duration:"),
        (ReportDirError("report folder /x is not writable"), 2, "not writable"),
        (StoreUnreachable("the tracking store at sqlite:///x cannot be reached"), 2, "cannot be reached"),
        (SnapshotError("no network"), 1, "no network"),
        (Interrupted(signal.SIGTERM), 128 + signal.SIGTERM, "interrupted (SIGTERM)"),
    ]
    for error, code, said in cases:
        result = CliRunner().invoke(_raising(error), [])
        assert result.exit_code == code and said in result.output, (error, result.output)
        assert "Traceback" not in result.output
    with pytest.raises(ZeroDivisionError):  # not a library error: a bug, shown as one
        CliRunner().invoke(_raising(ZeroDivisionError()), [], catch_exceptions=False)


def test_a_register_setting_names_the_option_that_set_it(tmp_path, tiny_snapshot):
    args = ["register", "--snapshot", str(tiny_snapshot), "--home", str(tmp_path), "--flavour", "pyfunc"]
    result = CliRunner().invoke(main, [*args, "--model-config", "do_sample=false"])
    assert result.exit_code == 2 and "--model-config" in result.output, result.output
    result = CliRunner().invoke(main, [*args, "--name", "no spaces"])
    assert result.exit_code == 2 and "--name" in result.output and "letters, digits" in result.output
