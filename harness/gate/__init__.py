"""The pre-deploy gate: candidate loading, the generate spy, checks, runner and reports."""
