"""A failing example as something a user can rerun: the scoring-server JSON bodies in order,
a short Python snippet that sends them to the logged model through MLflow's own parsing,
and the same as curl against ``mlflow models serve``."""

from __future__ import annotations

import json
import shlex
from typing import Any

from harness.gate.explore.search import Finding

_PYTHON = """import json, mlflow
from harness.model.signature import parse_payload  # the scoring server's own parsing
{tracking}model = mlflow.pyfunc.load_model({uri!r})
for body in json.loads({bodies!r}):
    data, params = parse_payload(body, model.metadata.signature)
    try:
        print(repr(model.predict(data, params=params)))
    except Exception as error:  # what the scoring server turns into its error answer
        print(type(error).__name__, getattr(error, "error_code", ""), error)
"""


def python_snippet(finding: Finding, model_uri: str | None, tracking_uri: str | None) -> str:
    bodies = json.dumps([step.body for step in finding.steps], ensure_ascii=False)
    tracking = f"mlflow.set_tracking_uri({tracking_uri!r})\n" if tracking_uri else ""
    return _PYTHON.format(tracking=tracking, uri=model_uri or "MODEL_URI", bodies=bodies)


def curl_lines(finding: Finding) -> list[str]:
    """One curl per request, in order, against ``$SCORING_URL`` (``mlflow models serve``)."""
    return [
        f"curl -s -X POST \"$SCORING_URL/invocations\" -H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(step.body, ensure_ascii=False))}"
        for step in finding.steps
    ]


def evidence(finding: Finding, model_uri: str | None, tracking_uri: str | None) -> dict[str, Any]:
    """The report's reproducer: the smallest request (or sequence), what each side gave at
    each step, and ready-to-run reproductions."""
    return {
        "reproducer": {
            "requests": len(finding.steps),
            "steps": [step.to_dict() for step in finding.steps],
            "bodies": [step.body for step in finding.steps],
            "python": python_snippet(finding, model_uri, tracking_uri),
            "curl": curl_lines(finding),
            "flaky": finding.flaky,
        }
    }


__all__ = ["curl_lines", "evidence", "python_snippet"]
