"""Model folders of other families in the app: a Marian folder opens, translates and is remembered; a GPT-2
folder offers only decoder self-attention and continues a prompt; a BERT folder offers only encoder
self-attention and fills each [MASK]; switching shapes never shows a stale trace."""

from __future__ import annotations

import shutil
from dataclasses import replace

from bert_fixtures import build_bert
from gpt2_fixtures import build_gpt2
from hf_fixtures import build_marian

from engine.architecture import ATTENTION_KINDS
from engine.decoding import DecodingOptions
from engine.translator import TraceOptions, Translator
from gui.menus import rebuild_model_menu
from gui.settings import recent_models

TIMEOUT_MS = 60_000  # the machine may be busy; waitUntil returns as soon as the condition holds


def wait_for_trace(qtbot, window, text: str) -> None:
    window.source.setText(text)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.source_text == text, timeout=TIMEOUT_MS)


def test_a_marian_folder_opens_translates_and_is_remembered(make_window, qtbot, tmp_path, settings):
    marian = tmp_path / "downloads" / "opus-mt-tiny"
    build_marian(marian)
    window = make_window()
    window.load_model(marian)
    qtbot.waitUntil(lambda: window.client.model.name == "opus-mt-tiny", timeout=TIMEOUT_MS)
    assert window.model_label.text() == "model: opus-mt-tiny"  # its name in the status bar

    wait_for_trace(qtbot, window, "le chat dort")
    reference = Translator.from_directory(marian, "cpu")
    # the app decodes with the folder's own defaults (length penalty, limits) and its beam box (1)
    expected = reference.trace("le chat dort", TraceOptions(decoding=replace(reference.default_decoding, beam_size=1)))
    assert window.trace.translation == expected.translation
    assert list(window.trace.src_ids) == list(expected.src_ids)
    assert window.trace.n_layers == expected.n_layers

    assert recent_models(settings)[0] == marian.resolve()
    rebuild_model_menu(window)
    recent = [a for a in window.model_actions.actions() if a.data() == str(marian.resolve())]
    assert len(recent) == 1 and recent[0].isChecked() and "opus-mt-tiny" in recent[0].text()


def test_recent_models_forget_folders_that_are_gone(make_window, qtbot, tmp_path, settings, tiny_model_dir):
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tiny_model_dir, copy)
    window = make_window(model_dir=copy)
    assert recent_models(settings) == [copy.resolve()]
    window.load_model(tiny_model_dir)
    qtbot.waitUntil(lambda: window.client.model.directory == str(tiny_model_dir.resolve()), timeout=TIMEOUT_MS)
    assert recent_models(settings) == [tiny_model_dir.resolve(), copy.resolve()]
    shutil.rmtree(copy)
    assert recent_models(settings) == [tiny_model_dir.resolve()]


# --- GPT-2 (decoder-only) and BERT-shaped (encoder-only) folders ---


def offered_kinds(window) -> list[str]:
    """The kinds whose buttons the selection bar shows."""
    buttons = window.selection_bar.kind_buttons
    return [kind for index, kind in enumerate(ATTENTION_KINDS) if not buttons.button(index).isHidden()]


def test_a_gpt2_folder_offers_its_one_kind_and_continues_the_prompt(make_window, qtbot, tmp_path):
    gpt2 = build_gpt2(tmp_path / "gpt2-tiny").directory
    window = make_window()
    window.selection_bar.new_tokens.setValue(7)
    window.load_model(gpt2)
    qtbot.waitUntil(lambda: window.client.model.name == "gpt2-tiny", timeout=TIMEOUT_MS)
    assert offered_kinds(window) == ["dec_self"] and window.view_state.kind == "dec_self"
    assert window.selection_bar.new_tokens.isVisible()
    assert [a.isVisible() for a in window.kind_actions.values()] == [False, True, False]  # the View menu too
    assert window.tabs.tabText(window.tabs.indexOf(window.decoder_steps)) == "Continuation"

    wait_for_trace(qtbot, window, "The cat")
    expected = Translator.from_directory(gpt2, "cpu").trace(
        "The cat", TraceOptions(decoding=DecodingOptions(max_new_tokens=7))
    )
    trace = window.trace
    assert trace.kinds == ("dec_self",) and trace.out_pieces == expected.out_pieces and 1 <= len(trace.out_pieces) <= 7
    steps = window.decoder_steps
    assert steps.slider.maximum() == len(trace.out_pieces) and steps.step_label.text().startswith("new token ")
    assert steps.candidates.count() == trace.topk_ids.shape[1]
    assert window.positional_view.positions == "learned"
    assert window.model_view.grid_shape == (2, 5)  # 2 layers × (4 heads + the average)

    errors = []
    window.exporter.finished.connect(lambda job, error: errors.append(error))
    for what in ("grid", "head", "step", "positional"):  # File → Export draws GPT-2's figures too
        window.export_to(what, tmp_path / f"{what}.png", dpi=40)
    qtbot.waitUntil(lambda: not window.exporting, timeout=TIMEOUT_MS)
    assert errors == [""] * 4 and all((tmp_path / f"{w}.png").stat().st_size > 1000 for w in ("grid", "step"))

    steps.slider.setValue(2)  # click the runner-up of new token 2: the continuation goes on from it
    runner_up = int(trace.topk_ids[1, 1])
    steps.force_candidate(1)
    qtbot.waitUntil(lambda: window.trace is not trace, timeout=TIMEOUT_MS)
    forced = window.trace
    assert forced.out_ids[:2].tolist() == [trace.out_ids[0], runner_up]
    assert forced.decoding.startswith("forced prefix of 2") and steps.reset.isVisible()
    steps.reset.click()
    qtbot.waitUntil(lambda: window.trace is not forced, timeout=TIMEOUT_MS)
    assert window.trace.out_pieces == trace.out_pieces

    window.selection_bar.beam_size.setValue(3)  # the beam width keeps working: a search tree
    qtbot.waitUntil(lambda: window.beam_view.tree is not None, timeout=TIMEOUT_MS)
    assert window.trace.decoding.startswith("beam 3")


def test_a_bert_folder_offers_encoder_self_attention_and_fills_each_mask(make_window, qtbot, tmp_path):
    bert = build_bert(tmp_path / "bert-tiny").directory
    window = make_window()
    window.load_model(bert)
    qtbot.waitUntil(lambda: window.client.model.name == "bert-tiny", timeout=TIMEOUT_MS)
    assert offered_kinds(window) == ["enc_self"] and window.view_state.kind == "enc_self"
    assert not window.selection_bar.beam_size.isEnabled() and not window.selection_bar.new_tokens.isVisible()
    assert window.tabs.tabText(window.tabs.indexOf(window.decoder_steps)) == "Masks"
    assert "BERT fills every [MASK] in one pass" in window.beam_view.caption.text()

    wait_for_trace(qtbot, window, "the cat")  # no mask yet: the tab says how to use it
    assert "Type [MASK] in the text" in window.decoder_steps.output.text()
    text = "the cat [MASK] on the [MASK] ."
    wait_for_trace(qtbot, window, text)
    trace, expected = window.trace, Translator.from_directory(bert, "cpu").trace(text)
    assert trace.kinds == ("enc_self",) and trace.out_pieces == expected.out_pieces and len(trace.out_pieces) == 2
    masks = [i for i, piece in enumerate(trace.src_pieces) if piece == "[MASK]"]
    steps = window.decoder_steps
    for step, row in enumerate(masks):
        steps.slider.setValue(step + 1)
        assert steps.step_label.text() == f"mask {step + 1}/2"
        assert [steps.candidates.item(i).text().split()[0] for i in range(steps.candidates.count())] == [
            piece for piece in expected.topk_pieces[step]
        ]
        assert window.model_view.highlighted_step() == row  # the mask's row is outlined in the maps
    assert window.positional_view.positions == "learned"
    assert window.tokens_label.text().endswith("2 masks")


def test_switching_shapes_never_shows_the_previous_models_trace(make_window, qtbot, tmp_path, tiny_model_dir):
    from model_fixtures import build_tiny_model

    folders = {
        "gpt2-tiny": build_gpt2(tmp_path / "gpt2-tiny").directory,
        "enc-tiny": build_tiny_model(tmp_path / "enc-tiny", n_decoder_layers=0, positions="learned"),
        "bert-tiny": build_bert(tmp_path / "bert-tiny").directory,
        tiny_model_dir.name: tiny_model_dir,
    }
    window = make_window()
    shown, cleared = [], []
    window.traceDisplayed.connect(
        lambda trace: shown.append((trace.model_name, window.client.model.name, trace.kinds, window.view_state.kinds))
    )
    window.client.modelLoaded.connect(lambda _summary: cleared.append(window.trace is None))
    wait_for_trace(qtbot, window, "le chat dort")
    expected_kinds = {
        "gpt2-tiny": ["dec_self"], "enc-tiny": ["enc_self"], "bert-tiny": ["enc_self"],
        tiny_model_dir.name: list(ATTENTION_KINDS),
    }  # fmt: skip
    for name in ("gpt2-tiny", "bert-tiny", tiny_model_dir.name, "enc-tiny", "gpt2-tiny"):
        window.load_model(folders[name])
        qtbot.waitUntil(
            lambda name=name: window.trace is not None and window.trace.model_name == name and window.idle,
            timeout=TIMEOUT_MS,
        )
        assert offered_kinds(window) == expected_kinds[name]
        for tab in range(window.tabs.count()):  # every tab draws the new shape without an error
            window.tabs.setCurrentIndex(tab)
            qtbot.wait(20)
        window.tabs.setCurrentIndex(0)
    assert all(cleared)  # the old trace left the screen the moment the new model loaded
    assert all(trace_model == model and tuple(kinds) == tuple(offered) for trace_model, model, kinds, offered in shown)
