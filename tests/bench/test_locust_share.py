"""The bookkeeping of a Locust-driven level, without Locust: how the workers split a level
(closed loop: interleaved prompts; open loop: interleaved arrivals), when a worker is done,
and how the master merges what they send (each batch once, every loss counted)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.bench._locust_share import Collector, Share
from harness.bench.locust_engine import Distribution, LevelPlan, LocustRunError, _level_run

PROMPTS = ("a", "b", "c", "d", "e")
ENGINE = {"name": "locust", "version": "2.47.0", "workers": 1}


def _share(**kwargs):
    fields = {"level": 0, "route": "r", "api": "invocations", "max_tokens": 2, "prompts": PROMPTS, "duration_s": 10.0}
    return Share(**{**fields, **kwargs})


def _drain(share, now):
    jobs = []
    while (job := share.next_job(now)) is not None:
        jobs.append(job)
        share.record([job[0], 0.01, True, 200, "x", job[1] - share.started])
    return jobs


@given(shares=st.integers(1, 4), steps=st.integers(1, 12))
def test_closed_loop_shares_interleave_the_prompts(shares, steps):
    """Requests in flight at once on different workers carry different prompts: together the
    shares cycle through the prompts as one loop would."""
    together = []
    for share in range(shares):
        s = _share(share=share, shares=shares)
        together += [(k * shares + share, s.next_job(s.started)[0]) for k in range(steps)]
    assert [p for _, p in sorted(together)] == [i % len(PROMPTS) for i in range(shares * steps)]


@given(
    arrivals=st.lists(st.floats(0, 5, allow_nan=False), min_size=0, max_size=30).map(sorted),
    shares=st.integers(1, 4),
)
def test_open_loop_shares_send_every_arrival_once_with_its_prompt(arrivals, shares):
    sent = []
    for share in range(shares):
        s = _share(arrivals=tuple(arrivals[share::shares]), share=share, shares=shares)
        sent += [(round(due - s.started, 9), prompt) for prompt, due in _drain(s, s.started)]
        assert s.finished(s.started)
    everything = [(round(t, 9), i % len(PROMPTS)) for i, t in enumerate(arrivals)]
    assert sorted(sent) == sorted(everything)


def test_a_reserved_request_keeps_the_worker_from_reporting_done():
    share = _share(arrivals=(0.0, 0.5))
    share.next_job(share.started)
    share.next_job(share.started)  # both taken; the second waits for its due time
    assert not share.finished(share.started + 1)
    share.record([0, 0.1, True, 200, "x", 0.0])
    assert not share.finished(share.started + 1)  # one still out
    share.record([1, 0.1, True, 200, "x", 0.5])
    assert share.finished(share.started + 1)


def test_a_closed_loop_stops_sending_at_its_deadline():
    share = _share(duration_s=1.0)
    assert share.next_job(share.started + 0.5) is not None
    assert share.next_job(share.started + 1.0) is None
    assert not share.finished(share.started + 1.0)  # the one sent before the deadline is out
    share.record([0, 0.6, True, 200, "x", 0.5])
    assert share.finished(share.started + 1.1)


def _row(sent_s):
    return [0, 0.1, True, 200, "x", sent_s]


def test_the_master_merges_each_batch_once_and_counts_what_each_worker_sent():
    collector = Collector()
    collector.batches[("w1", 0, 0)] = [_row(0.3), _row(0.1)]
    collector.batches[("w1", 0, 1)] = [_row(0.5)]
    collector.batches.setdefault(("w1", 0, 1), [_row(0.5)])  # delivered twice: kept once
    collector.batches[("w2", 0, 0)] = [_row(0.2)]
    collector.batches[("w2", 1, 0)] = [_row(9.0)]  # another level
    collector.done[("w1", 0)] = {"count": 3, "locust": {}}
    merged = collector.level(0, ["w1", "w2"])
    assert [r[5] for r in merged["rows"]] == [0.1, 0.2, 0.3, 0.5]  # in order of when they were sent
    assert merged["workers"] == [{"share": 0, "sent": 3, "received": 3}, {"share": 1, "sent": None, "received": 1}]


def _level(rows, accounts, complete=True):
    locust = {"requests": len(rows), "failures": 0, "p50_ms": 1, "p90_ms": 1, "p99_ms": 1, "max_ms": 1}
    return {"index": 0, "rows": rows, "workers": accounts, "locust": locust, "complete": complete}


def test_a_lost_sample_or_an_unfinished_worker_fails_the_run():
    plan = LevelPlan(users=2, rate=None, duration_s=1.0, seed=0)
    ok = _level_run(_level([_row(0.1)], [{"share": 0, "sent": 1, "received": 1}]), plan, PROMPTS, None, ENGINE)
    assert ok.result.requests == 1 and ok.result.elapsed_s == pytest.approx(1.0)
    with pytest.raises(LocustRunError, match="worker share 0: sent 2, received 1"):
        _level_run(_level([_row(0.1)], [{"share": 0, "sent": 2, "received": 1}]), plan, PROMPTS, None, ENGINE)
    with pytest.raises(LocustRunError, match="never finished"):
        _level_run(_level([], [{"share": 0, "sent": 0, "received": 0}], complete=False), plan, PROMPTS, None, ENGINE)
    # The master's reason travels to the user with the counts.
    lost = {**_level([], [{"share": 0, "sent": None, "received": 0}], complete=False), "why": "a worker quit"}
    with pytest.raises(LocustRunError, match=r"sent None, received 0; a worker quit\)"):
        _level_run(lost, plan, PROMPTS, None, ENGINE)


@pytest.mark.parametrize(
    "kwargs, field, allowed",
    [
        ({"processes": 0}, "processes", "allowed 1-64"),
        ({"processes": 65}, "processes", "allowed 0-64"),
        ({"master_port": 70000}, "master_port", "allowed 1-65535"),
        ({"master_bind": "two words"}, "master_bind", "a host name or IP address"),
    ],
)
def test_a_bad_distribution_names_the_field_and_range(kwargs, field, allowed):
    from harness import ConfigError

    with pytest.raises(ConfigError) as error:
        Distribution(**kwargs)
    assert error.value.field == field and allowed in str(error.value)


def test_the_cli_prints_the_shipped_locustfile():
    from pathlib import Path

    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["bench", "locustfile"])
    path = Path(result.output.strip())
    assert result.exit_code == 0 and path.name == "locustfile.py" and path.is_file()
    assert "class CompletionsUser(HttpUser)" in path.read_text()
