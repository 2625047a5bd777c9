"""What the candidate left running in its process tree (the worker kills it all afterwards;
this check tells the user it would have stayed up behind a real server)."""

from __future__ import annotations

from harness.gate.checks.registry import GateContext, Outcome, failed, passed, check, skipped


@check("candidate.processes", "the candidate leaves no child process listening on a port")
def candidate_processes(ctx: GateContext) -> Outcome:
    strays = getattr(ctx.candidate, "stray_processes", None)
    if strays is None:
        return skipped("skipped: the candidate runs in this process, not in a worker")
    found = strays()
    listening = [p for p in found if p["listening"]]
    if listening:
        first = listening[0]
        return failed(
            f"the candidate started {len(found)} process(es); pid {first['pid']} "
            f"({first['name']}) listens on {first['listening']}: it would outlive a "
            "request and hold the port behind a real server",
            processes=found,
        )
    return passed(f"no child process listening ({len(found)} child process(es))", processes=found)
