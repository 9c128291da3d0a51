"""The digits benchmark's data, processor and datasets (the shipped model: test_digits_model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastctrl.digits.model import (
    EOS,
    BatchEncoder,
    DigitsModelConfig,
    build_processor,
    vocabulary,
)
from fastctrl.digits.pages import (
    ANSWERS,
    CELL,
    MAX_ANSWER_WORDS,
    MAX_GRID,
    NO_DIGIT,
    PAGE,
    TASK_TYPES,
    Page,
    PageGenerator,
    ask,
    load_scans,
    patch_labels,
    profile_pages,
    relevant_patches,
    scan_pool,
    write_dataset,
)
from fastctrl.runtime.datasets import load_vqa_dataset


def test_scan_pools_are_disjoint_and_cover_every_scan():
    pools = [set(scan_pool(s).tolist()) for s in ("train", "val", "test")]
    assert not (pools[0] & pools[1]) and not (pools[0] & pools[2]) and not (pools[1] & pools[2])
    assert sum(len(p) for p in pools) == len(load_scans()[1]) == 1797
    with pytest.raises(ValueError, match="split must be one of"):
        scan_pool("dev")


def test_pages_are_deterministic_and_seed_dependent():
    a, b = PageGenerator("val", 3).page(17), PageGenerator("val", 3).page(17)
    assert a.request_id == b.request_id and np.array_equal(a.image, b.image)
    assert (a.question, a.answer, a.digits) == (b.question, b.answer, b.digits)
    c = PageGenerator("val", 4).page(17)
    assert not np.array_equal(a.image, c.image) or a.digits != c.digits


def test_pages_show_only_their_pools_scans():
    """Each drawn cell is a scan of the page's own pool, and the pixels are that scan."""
    scans, labels = load_scans()
    for split in ("train", "test"):
        gen = PageGenerator(split, 0)
        pool = set(scan_pool(split).tolist())
        for i in range(50):
            rng = np.random.default_rng([0, ("train", "val", "test").index(split), i])
            digits, cells = gen.layout(rng)
            drawn = cells[cells >= 0]
            assert set(drawn.tolist()) <= pool
            assert np.array_equal(labels[drawn], digits[digits >= 0])


def _answer(page):
    d = np.array(page.digits)
    present = d[d >= 0]
    q = page.question.split()
    if page.task_type == "read":
        return str(d[int(q[3]) - 1, int(q[5]) - 1])
    if page.task_type == "exists":
        return "yes" if int(q[3]) in present else "no"
    if page.task_type == "count":
        return str(int((present == int(q[2])).sum()))
    if page.task_type == "largest":
        return str(present.max())
    line = d[int(q[3]) - 1] if q[2] == "row" else d[:, int(q[3]) - 1]
    if page.task_type == "list":
        return " ".join(str(int(x)) for x in line[line >= 0])
    return str(int(line[line >= 0].sum()))


def test_answers_are_exact_and_layouts_valid():
    gen = PageGenerator("train", 1)
    seen_tasks, n_digits = set(), set()
    for i in range(400):
        p = gen.page(i)
        d = np.array(p.digits)
        rows, cols = d.shape
        assert 1 <= rows <= MAX_GRID and 1 <= cols <= MAX_GRID
        assert (d >= 0).any(1).all() and (d >= 0).any(0).all(), "an empty row or column"
        assert p.image.shape == (PAGE, PAGE) and p.image.dtype == np.uint8
        words = p.answer.split()
        assert 1 <= len(words) <= MAX_ANSWER_WORDS and set(words) <= set(ANSWERS), p.answer
        assert p.answer == _answer(p), (p.question, p.digits)
        seen_tasks.add(p.task_type)
        n_digits.add(p.n_digits)
    assert seen_tasks == set(TASK_TYPES)
    assert min(n_digits) == 1 and max(n_digits) == 16


def test_each_digit_lies_inside_its_own_cell_and_patch_labels_name_it():
    """Ink only in filled cells (one vision patch each), drawn at one per-page size of
    MIN_SIZE..CELL pixels; the dense vision target is the cell's digit."""
    gen = PageGenerator("val", 2)
    sizes = set()
    for i in range(60):
        p = gen.page(i)
        d = np.full((MAX_GRID, MAX_GRID), -1)
        d[: len(p.digits), : len(p.digits[0])] = p.digits
        cells = p.image.reshape(MAX_GRID, CELL, MAX_GRID, CELL).transpose(0, 2, 1, 3)
        ink = cells.reshape(MAX_GRID, MAX_GRID, -1).max(-1) > 0
        assert not ink[d < 0].any(), "ink in an empty cell"
        assert ink[d >= 0].all(), "a digit cell without ink"
        rows, cols = np.nonzero(cells.max(axis=(0, 1)) > 0)  # union of ink over cells
        sizes.add(int(max(np.ptp(rows), np.ptp(cols))) + 1)
        labels = patch_labels(p.digits, CELL).reshape(MAX_GRID, MAX_GRID)
        assert np.array_equal(labels, np.where(d >= 0, d, NO_DIGIT))
    assert max(sizes) <= CELL and len(sizes) > 3  # the drawn size varies from page to page


def test_conversations_ask_exact_questions_about_one_page_first_the_served_one():
    gen = PageGenerator("train", 3)
    for i in range(40):
        page, qa = gen.conversation(i, 5)
        again = gen.page(i)
        assert page.digits == again.digits and np.array_equal(page.image, again.image)
        assert qa[0] == (page.task_type, page.question, page.answer)
        assert len(qa) == 5 and qa == gen.conversation(i, 5)[1]
        for task, question, answer in qa:
            assert (
                _answer(
                    Page(
                        page.request_id, page.split, page.image, page.digits, task, question, answer
                    )
                )
                == answer
            )
    with pytest.raises(ValueError, match="turns must be >= 1"):
        gen.conversation(0, 0)


def test_conversation_inputs_put_each_answer_after_its_prompt():
    """Turn one is the served prompt exactly; each answer's first target sits at ``answer:``,
    every answer token (``</s>`` last) is predicted from the position before it and, except
    the very last ``</s>``, is the next input token (teacher forcing)."""
    cfg = DigitsModelConfig()
    enc = BatchEncoder(build_processor(cfg), cfg)
    talks = [
        PageGenerator("train", 0, task_types=("list", "read")).conversation(i, 3) for i in range(6)
    ]
    inputs, rows, pos, targets = enc.conversations(
        [p.image for p, _ in talks], [[(q, a) for _, q, a in qa] for _, qa in talks]
    )
    ids, vocab = inputs["input_ids"], vocabulary()
    want = [
        (b, t)
        for b, (_, qa) in enumerate(talks)
        for _, _, a in qa
        for t in [vocab[w] for w in a.split()] + [EOS]
    ]
    assert [(int(r), int(t)) for r, t in zip(rows, targets, strict=True)] == want
    assert any(len(a.split()) > 1 for _, qa in talks for _, _, a in qa)  # multi-word answers
    last = torch.tensor([k + 1 == len(rows) or rows[k + 1] != rows[k] for k in range(len(rows))])
    assert (ids[rows[~last], pos[~last] + 1] == targets[~last]).all()
    assert (pos[last] == ids.shape[1] - 1).all()  # the final </s> is not an input
    first = torch.tensor([k == 0 or targets[k - 1] == EOS for k in range(len(rows))])
    assert (ids[rows[first], pos[first]] == vocab["answer:"]).all()
    served = enc([p.image for p, _ in talks], [p.question for p, _ in talks])["input_ids"]
    for b in range(len(talks)):
        k = int(torch.nonzero(rows == b)[0])
        first_turn = ids[b, : pos[k] + 1]
        assert first_turn[first_turn != 0].tolist() == served[b][served[b] != 0].tolist()
    with pytest.raises(ValueError, match="answer words"):
        enc.answer_tokens("eleventy")


def test_relevant_patches_mark_the_cells_each_question_is_about():
    digits = [[3, -1, 7], [7, 9, 1]]  # 2 x 3 grid in the top-left of the 4 x 4 patch raster

    def marked(question):
        grid = relevant_patches(question, digits, CELL).reshape(MAX_GRID, MAX_GRID)
        return sorted(map(tuple, np.argwhere(grid).tolist()))

    assert marked("digit at row 2 column 3 ?") == [(1, 2)]
    assert marked("is there a 7 ?") == marked("how many 7 ?") == [(0, 2), (1, 0)]
    assert marked("is there a 5 ?") == []
    assert marked("largest digit ?") == [(1, 1)]
    assert marked("sum of row 1 ?") == [(0, 0), (0, 2)]  # the empty cell is not marked
    assert marked("sum of column 2 ?") == [(1, 1)]
    gen = PageGenerator("train", 5)
    for i in range(200):  # every generated question parses; read marks exactly one cell
        p = gen.page(i)
        hits = relevant_patches(p.question, p.digits, CELL)
        if p.task_type == "read":
            assert hits.sum() == 1
        if p.task_type == "count":
            assert hits.sum() == int(p.answer)
        if p.task_type == "exists":
            assert bool(hits.any()) == (p.answer == "yes")
    with pytest.raises(ValueError, match="not a digits question"):
        relevant_patches("what is this ?", digits, CELL)


def test_the_prompt_puts_the_question_before_the_image():
    """``<s> question <image>*16 answer:``: the vision tokens can attend to the question."""
    cfg = DigitsModelConfig()
    proc = build_processor(cfg)
    page = PageGenerator("val", 0).page(3)
    from fastctrl.runtime.loading import ChatProcessor

    ids = ChatProcessor(proc)([page.rgb], [page.question])["input_ids"][0].tolist()
    vocab = vocabulary()
    words = [vocab[w] for w in page.question.split()]
    assert ids == [vocab["<s>"], *words, *[vocab["<image>"]] * cfg.vision_tokens, vocab["answer:"]]


def test_exists_is_balanced_and_unknown_task_refused():
    gen = PageGenerator("val", 0, task_types=["exists"])
    yes = np.mean([gen.page(i).answer == "yes" for i in range(400)])
    assert 0.4 < yes < 0.6
    with pytest.raises(ValueError, match="task must be one of"):
        ask("median", np.array([[1]]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="task_types must be"):
        PageGenerator("val", 0, task_types=["median"])


def test_every_question_word_is_in_the_vocabulary():
    vocab = vocabulary()
    gen = PageGenerator("train", 2)
    for i in range(300):
        p = gen.page(i)
        assert all(w in vocab for w in (p.question + " " + p.answer).split())


def test_batch_encoder_equals_the_processor():
    cfg = DigitsModelConfig()
    proc = build_processor(cfg)
    pages = [PageGenerator("test", 0).page(i) for i in range(6)]
    enc = BatchEncoder(proc, cfg)
    enc.check(proc, [p.image for p in pages], [p.question for p in pages])  # raises if not
    inputs = enc([p.image for p in pages], [p.question for p in pages])
    assert int((inputs["input_ids"][0] == 3).sum()) == cfg.vision_tokens
    with pytest.raises(ValueError, match="not in the vocabulary"):
        enc.prompt_ids("what is this ?")


def test_profile_pages_split_and_load_with_their_split(tmp_path):
    pages = profile_pages(8, 4, seed=0, train_share=0.75)
    assert [s for _, s in pages] == ["train"] * 6 + ["val"] * 2 + ["test"] * 4
    assert {p.split for p, s in pages if s != "test"} == {"val"}
    path = write_dataset(tmp_path, pages)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 12 and all((tmp_path / r["image"]).is_file() for r in rows)
    ds = load_vqa_dataset(str(path))
    reqs = list(ds)
    assert [r.split for r in reqs] == [s for _, s in pages]
    assert [r.task_type for r in reqs] == [p.task_type for p, _ in pages]
    assert np.array_equal(np.asarray(reqs[0].image.convert("L")), pages[0][0].image)
    with pytest.raises(ValueError, match="n_val >= 2"):
        profile_pages(1, 1)


def test_a_bad_profile_split_value_names_the_column(tmp_path):
    path = write_dataset(tmp_path, profile_pages(2, 1))
    lines = path.read_text().splitlines()
    row = json.loads(lines[0])
    row["profile_split"] = "holdout"
    path.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="profile_split.*train, val, test"):
        load_vqa_dataset(str(path))
