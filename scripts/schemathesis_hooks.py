"""Schemathesis hooks for scripts/schemathesis: a check that every error answer is
application/problem+json with a sentence in `detail`, and path parameters that sometimes name
the real event the script created (so generated requests reach past the 404)."""

import json
import os

import schemathesis
from hypothesis import strategies as st

EVENT = os.environ.get("TOLK_ST_EVENT", "")


@schemathesis.check
def problem_json(ctx, response, case):
    """Every 4xx and 5xx answer is application/problem+json with a sentence in `detail`."""
    if response.status_code < 400:
        return None
    values = response.headers.get("content-type") or response.headers.get("Content-Type") or [""]
    content_type = values[0] if isinstance(values, list) else values
    assert content_type == "application/problem+json", (
        f"{response.status_code} answered as '{content_type}', not application/problem+json: {response.text[:200]}"
    )
    problem = json.loads(response.text)
    assert problem.get("status") == response.status_code, f"status {problem.get('status')} in the body"
    detail = problem.get("detail", "")
    assert isinstance(detail, str) and " " in detail, f"detail is not a sentence: {detail!r}"
    return None


@schemathesis.hook
def flatmap_path_parameters(ctx, parameters):
    """Half the cases keep the generated event id, half use the real one."""
    if not EVENT or not parameters:
        return st.just(parameters)
    real = {k: (EVENT if k in ("id", "event") else v) for k, v in parameters.items()}
    return st.sampled_from([parameters, real])


# WHIP and WHEP bodies are SDP: sent as the text generated.
schemathesis.serializer.alias("application/sdp", "text/plain")
