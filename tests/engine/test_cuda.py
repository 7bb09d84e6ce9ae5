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


@pytest.mark.parametrize("with_qkv", [False, True])  # recorded while decoding; one forced pass over the text
def test_cuda_trace_of_a_text_of_sentences_matches_cpu(tiny_model_dir, with_qkv):
    from engine.translator import TraceOptions

    text = "Je suis étudiant. Le chien dort ! Nous aimons le chat."
    options = TraceOptions(with_qkv=with_qkv)
    cpu = Translator.from_directory(tiny_model_dir, "cpu").trace(text, options)
    gpu = Translator.from_directory(tiny_model_dir, "cuda").trace(text, options)
    assert gpu.sentences == cpu.sentences == 3 and gpu.out_pieces == cpu.out_pieces
    for kind in ("enc_self", "dec_self", "cross"):
        np.testing.assert_allclose(gpu.attention(kind), cpu.attention(kind), atol=1e-4)


def test_torchrun_trains_on_every_gpu(tmp_path):
    """One process per GPU there is (nccl; never cuda:1 on a one-GPU machine), all ending with one model."""
    from model_fixtures import tiny_pairs
    from test_train import torchrun

    pairs = tiny_pairs()
    (tmp_path / "train.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    (tmp_path / "dev.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs[:20]), encoding="utf-8")
    processes = torch.cuda.device_count()
    assert torchrun(tmp_path, processes, 29519, cpu=False) == [4] * processes
