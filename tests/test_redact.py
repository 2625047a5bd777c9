"""One redaction function: URL userinfo (any scheme), token shapes, credential values."""

import io
import logging

import click
import pytest
from click.testing import CliRunner

from harness._redact import MASK, RedactingStream, add_secret, credential_values, redact, redact_data, secrets_in

CANARY = "canary-7f3a9c1e55b2"


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://user:{CANARY}@files.example.com/x",
        f"http://user:{CANARY}@host:5000",
        f"postgresql+psycopg2://admin:{CANARY}@db/mlflow",
        f"s3://{CANARY}@bucket/key",
        f"databricks://{CANARY}@workspace",
    ],
)
def test_url_userinfo_is_masked_whatever_the_scheme(url):
    out = redact(f"tracking URI {url} is down")
    assert CANARY not in out and MASK + "@" in out
    assert out.endswith("is down")


def test_text_without_secrets_is_unchanged():
    text = "http://127.0.0.1:5000/endpoints/x/invocations user@example.com KEY=1"
    assert redact(text) == text


@pytest.mark.parametrize(
    "token", ["dapi" + "0123456789abcdef" * 2, "sk-" + "A" * 40, "hf_" + "b" * 34, "ghp_" + "c" * 36]
)
def test_provider_token_shapes_are_masked_without_any_variable(token):
    assert token not in redact(f"databricks_workspace_url: {token}")


def test_credential_env_values_and_added_secrets_are_masked(monkeypatch):
    monkeypatch.setenv("MY_API_TOKEN", CANARY)
    monkeypatch.setenv("PLAIN_SETTING", "not-a-secret-value")
    assert CANARY in credential_values() and "not-a-secret-value" not in credential_values()
    assert redact(f"answer: {CANARY}!") == f"answer: {MASK}!"
    add_secret("route-secret-value-91")
    assert redact("x route-secret-value-91 y") == f"x {MASK} y"
    assert secrets_in("a route-secret-value-91", ["route-secret-value-91", "other-one"]) == {"route-secret-value-91"}


def test_short_values_are_not_treated_as_secrets(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_TOKEN", "1")
    add_secret("abc")
    assert redact("1 abc") == "1 abc"


def test_redact_data_reaches_nested_strings_and_keys(monkeypatch):
    monkeypatch.setenv("X_SECRET", CANARY)
    data = {"a": [CANARY, {"b": f"ftp://u:{CANARY}@h"}], CANARY: 3, "n": 1.5}
    out = redact_data(data)
    assert CANARY not in repr(out) and out["n"] == 1.5


def test_the_redacting_stream_covers_click_print_and_logging(monkeypatch):
    monkeypatch.setenv("X_PASSWORD", CANARY)
    inner = io.StringIO()
    stream = RedactingStream(inner)
    print(f"print {CANARY}", file=stream)
    click.echo(f"click {CANARY}", file=stream)
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("harness-redact-test")
    logger.addHandler(handler)
    try:
        logger.warning("log %s", CANARY)
    finally:
        logger.removeHandler(handler)
    assert CANARY not in inner.getvalue() and inner.getvalue().count(MASK) == 3


def test_the_cli_masks_a_tracking_uri_it_cannot_reach(tiny_snapshot, free_port):
    """Fails before logging anything (nothing listens on the port), never showing the password."""
    from harness.cli import main

    result = CliRunner().invoke(
        main,
        ["register", "--snapshot", str(tiny_snapshot), "--tracking-uri", f"http://user:{CANARY}@127.0.0.1:{free_port}"],
    )
    assert result.exit_code == 2, result.output
    assert "cannot be reached" in result.output and CANARY not in result.output
    assert "logging" not in result.output  # stopped before MLflow's minutes of retries
