"""pytest-benchmark: tiny MPT on the CPU, raw generate at fixed output length
(`pytest benchmarks --benchmark-json OUT.json`)."""

import pytest

from harness.bench.measure import fixed_length_call


@pytest.mark.parametrize("batch", [1, 4])
def test_generate_tiny_cpu(benchmark, generator, record, batch):
    run, prompt = fixed_length_call(generator, batch, prompt_tokens=64, new_tokens=16)
    benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
    record(batch, prompt, 16)
