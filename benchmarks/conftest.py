"""pytest-benchmark suites: `pytest benchmarks --benchmark-json OUT.json` (CPU tiny model;
the 7B shape on CUDA runs only where a GPU is, `@pytest.mark.gpu`)."""

import pytest


@pytest.fixture
def record(benchmark):
    """Adds the case and tokens/s to extra_info, so `harness bench compare` can read them."""

    def add(batch: int, prompt: int, new: int):
        benchmark.extra_info.update(batch_size=batch, prompt_tokens=prompt, new_tokens=new)
        benchmark.extra_info["tokens_per_s"] = batch * new / benchmark.stats.stats.median

    return add
