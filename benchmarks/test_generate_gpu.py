"""MPT-7B shape (random bf16 weights created on the GPU) on CUDA."""

import pytest

from harness.bench.measure import fixed_length_call

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def generator_7b():
    from harness.bench.core import BenchConfig, load_subject

    return load_subject(BenchConfig(shape="mpt-7b", device="cuda"))


@pytest.mark.parametrize("batch", [1, 8, 32])
@pytest.mark.parametrize("prompt_tokens", [128, 512])
def test_generate_mpt7b_cuda(benchmark, generator_7b, record, batch, prompt_tokens):
    import torch

    run, prompt = fixed_length_call(generator_7b, batch, prompt_tokens, new_tokens=128)

    def synced():
        run()
        torch.cuda.synchronize()

    benchmark.pedantic(synced, rounds=3, warmup_rounds=1, iterations=1)
    record(batch, prompt, 128)
