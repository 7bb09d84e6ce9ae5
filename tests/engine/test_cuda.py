"""The same model on CUDA: logits and traces agree with the CPU (run where a GPU is present)."""

import numpy as np
import pytest
import torch

from engine.translator import Translator

pytestmark = pytest.mark.requires_cuda


def test_cpu_and_cuda_logits_agree(tiny_model_dir):
    cpu = Translator.from_directory(tiny_model_dir, "cpu")
    gpu = Translator.from_directory(tiny_model_dir, "cuda")
    src = torch.tensor([[5, 6, 7, 8, 3]])
    tgt = torch.tensor([[2, 9, 10, 11]])
    with torch.no_grad():
        torch.testing.assert_close(gpu.model(src.cuda(), tgt.cuda()).cpu(), cpu.model(src, tgt), atol=1e-4, rtol=1e-4)


def test_cuda_trace_matches_cpu_trace(tiny_model_dir):
    cpu = Translator.from_directory(tiny_model_dir, "cpu").trace("Je suis étudiant.")
    gpu = Translator.from_directory(tiny_model_dir, "cuda").trace("Je suis étudiant.")
    assert gpu.device.startswith("cuda") and gpu.out_pieces == cpu.out_pieces
    for kind in ("enc_self", "dec_self", "cross"):
        np.testing.assert_allclose(gpu.attention(kind), cpu.attention(kind), atol=1e-4)
