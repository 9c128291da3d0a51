"""fastctrl.runtime.datasets: every source format, column detection, bad rows, hub errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastctrl.runtime.datasets import ColumnMap, HubDatasetError, VQADataset, load_vqa_dataset
from fastctrl.runtime.metrics import resolve_metric
from fastctrl.runtime.requests import Request, as_requests

RED, GREEN, BLUE = (220, 40, 40), (40, 180, 60), (40, 70, 220)


def png(path: Path, color=RED, mode: str = "RGB", size=(8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8) + np.array(color, np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def png_bytes(color=RED) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.zeros((5, 7, 3), np.uint8) + np.array(color, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def write_jsonl(path: Path, rows: list[dict], blank_line_after: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if blank_line_after is not None:
        lines.insert(blank_line_after + 1, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def pixel(req: Request) -> tuple[int, int, int]:
    assert isinstance(req.image, Image.Image) and req.image.mode == "RGB"
    return req.image.getpixel((0, 0))


def three_rows(tmp_path: Path) -> list[dict]:
    png(tmp_path / "img" / "a.png", RED)
    png(tmp_path / "img" / "b.png", GREEN)
    png(tmp_path / "img" / "c.png", BLUE)
    return [
        {"image": "img/a.png", "question": "colour?", "answers": ["red", "Red"]},
        {"image": "img/b.png", "question": "colour?", "answers": ["green"]},
        {"image": "img/c.png", "question": "colour?", "answers": ["blue"]},
    ]


# --------------------------------------------------------------------------- formats


def test_jsonl_round_trip(tmp_path):
    png(tmp_path / "img" / "a.png", RED)
    png(tmp_path / "img" / "gray.png", (90, 90, 90), mode="L")  # not RGB on disk
    absolute = png(tmp_path / "elsewhere" / "b.png", BLUE)
    src = write_jsonl(
        tmp_path / "my_vqa.jsonl",
        [
            {
                "image": "img/a.png",
                "question": "what colour?",
                "answers": ["red", "crimson"],
                "task_type": "color",
                "request_id": "q-a",
            },
            {"image": str(absolute), "question": "and this?", "answers": "blue"},
            {"image": "img/gray.png", "question": "gray?", "answers": [2, "two"]},
        ],
        blank_line_after=0,
    )
    ds = load_vqa_dataset(str(src))
    assert isinstance(ds, VQADataset) and len(ds) == 3
    assert ds.name == "my_vqa" and ds.kind == "jsonl" and ds.has_answers and ds.skipped == []
    r0, r1, r2 = list(ds)
    assert (r0.request_id, r0.prompt, r0.answer, r0.task_type) == (
        "q-a",
        "what colour?",
        ["red", "crimson"],
        "color",
    )
    assert (r1.request_id, r1.answer, r1.task_type) == ("my_vqa-1", ["blue"], "vqa")
    assert r2.answer == ["2", "two"] and r2.request_id == "my_vqa-2"
    assert pixel(r0) == RED and pixel(r1) == BLUE and pixel(r2) == (90, 90, 90)
    assert ds[-1].request_id == "my_vqa-2"
    assert [r.request_id for r in ds[1:]] == ["my_vqa-1", "my_vqa-2"]
    # the sweep accepts it as is, and the metric choice sees the answers
    assert [r.request_id for r in as_requests(ds)] == ds.request_ids
    assert resolve_metric("auto", ds.has_answers)[0] == "exact_match"


def test_csv_json_list_and_pipe_answers(tmp_path):
    png(tmp_path / "a.png", RED)
    png(tmp_path / "b.png", GREEN)
    src = write_csv(
        tmp_path / "set.csv",
        ["image", "question", "answers", "request_id"],
        [
            ["a.png", "q1", json.dumps(["a|b", "c"]), "r1"],
            ["b.png", "q2", "two | 2|deux", ""],
            ["a.png", "q3", "single", "r3"],
        ],
    )
    ds = load_vqa_dataset(str(src))
    assert ds.kind == "csv" and ds.name == "set"
    assert [r.answer for r in ds] == [["a|b", "c"], ["two", "2", "deux"], ["single"]]
    assert ds.request_ids == ["r1", "set-1", "r3"]
    assert pixel(ds[1]) == GREEN


def test_json_list_file(tmp_path):
    rows = three_rows(tmp_path)
    src = tmp_path / "list.json"
    src.write_text(json.dumps(rows))
    ds = load_vqa_dataset(str(src))
    assert ds.kind == "json" and [r.answer for r in ds] == [r["answers"] for r in rows]
    assert pixel(ds[2]) == BLUE


def _hf_dataset(n: int = 3, *, split: str | None = None):
    datasets = pytest.importorskip("datasets")
    colors = [RED, GREEN, BLUE]
    feats = datasets.Features(
        {
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answers": datasets.List(datasets.Value("string")),
        }
    )
    data = {
        "image": [{"bytes": png_bytes(colors[i % 3]), "path": None} for i in range(n)],
        "question": [f"q{i}" for i in range(n)],
        "answers": [[f"a{i}", f"b{i}"] for i in range(n)],
    }
    return datasets.Dataset.from_dict(
        data, features=feats, split=datasets.NamedSplit(split) if split else None
    )


def test_save_to_disk_dataset_with_image_feature(tmp_path):
    _hf_dataset(3).save_to_disk(str(tmp_path / "hfset"))
    ds = load_vqa_dataset(str(tmp_path / "hfset"))
    assert ds.kind == "save_to_disk" and ds.name == "hfset" and len(ds) == 3
    assert [pixel(r) for r in ds] == [RED, GREEN, BLUE]
    assert ds[1].answer == ["a1", "b1"] and ds[1].request_id == "hfset-1"
    with pytest.raises(ValueError, match="single Dataset without splits"):
        load_vqa_dataset(str(tmp_path / "hfset"), split="test")


def test_save_to_disk_datasetdict_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(train=_hf_dataset(3), test=_hf_dataset(2))
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"has splits \['train', 'test'\]; choose one"):
        load_vqa_dataset(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"no split 'val'; available splits: \['train', 'test'\]"):
        load_vqa_dataset(str(tmp_path / "dd"), split="val")
    test = load_vqa_dataset(str(tmp_path / "dd"), split="test")
    train = load_vqa_dataset(str(tmp_path / "dd"), split="train")
    assert (len(test), len(train)) == (2, 3) and test.split == "test"
    assert pixel(test[1]) == GREEN
    assert "split 'test'" in test.summary()
    # a one-split dict needs no split
    datasets.DatasetDict(only=_hf_dataset(1)).save_to_disk(str(tmp_path / "one"))
    one = load_vqa_dataset(str(tmp_path / "one"))
    assert one.split == "only" and len(one) == 1


def test_save_to_disk_path_images_and_classlabel(tmp_path):
    """String image paths (relative to the directory) and ClassLabel answers."""
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "labels"
    png(out / "pics" / "x.png", GREEN)
    feats = datasets.Features(
        {
            "file_name": datasets.Value("string"),
            "query": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["yes", "no"]),
        }
    )
    datasets.Dataset.from_dict(
        {"file_name": ["pics/x.png"], "query": ["is it?"], "label": [1]}, features=feats
    ).save_to_disk(str(out))
    ds = load_vqa_dataset(str(out))
    assert ds[0].answer == ["no"] and ds[0].prompt == "is it?" and pixel(ds[0]) == GREEN


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_image_folder(tmp_path, fmt):
    folder = tmp_path / "shapes"
    png(folder / "images" / "0.png", RED)
    png(folder / "images" / "1.png", BLUE)
    if fmt == "jsonl":
        write_jsonl(
            folder / "questions.jsonl",
            [
                {"image": "images/0.png", "question": "q0", "answers": ["red"]},
                {"image": "images/1.png", "question": "q1", "answers": "blue"},
            ],
        )
    else:
        write_csv(
            folder / "questions.csv",
            ["image", "question", "answers"],
            [["images/0.png", "q0", "red"], ["images/1.png", "q1", '["blue"]']],
        )
    # loaded from another working directory: paths are relative to the folder
    ds = load_vqa_dataset(str(folder))
    assert ds.kind == "image_folder" and ds.name == "shapes"
    assert [r.answer for r in ds] == [["red"], ["blue"]]
    assert [pixel(r) for r in ds] == [RED, BLUE]
    assert ds.request_ids == ["shapes-0", "shapes-1"]


def test_image_folder_errors(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    with pytest.raises(
        ValueError,
        match="neither a datasets.save_to_disk directory nor an image "
        "folder.*accepted local formats.*jsonl",
    ):
        load_vqa_dataset(str(folder))
    write_jsonl(folder / "questions.jsonl", [])
    write_csv(folder / "questions.csv", ["image", "question", "answers"], [])
    with pytest.raises(ValueError, match="several questions files"):
        load_vqa_dataset(str(folder))
    (folder / "questions.csv").unlink()
    with pytest.raises(ValueError, match="has no rows"):
        load_vqa_dataset(str(folder))


def test_unsupported_file_and_split_on_file(tmp_path):
    txt = tmp_path / "data.txt"
    txt.write_text("hi")
    with pytest.raises(ValueError, match=r"unsupported file type '\.txt'.*save_to_disk"):
        load_vqa_dataset(str(txt))
    src = write_jsonl(tmp_path / "d.jsonl", three_rows(tmp_path))
    with pytest.raises(ValueError, match="has no splits"):
        load_vqa_dataset(str(src), split="test")


# --------------------------------------------------------------------------- columns


@pytest.mark.parametrize(
    "img,q,ans,rid",
    [
        ("image_path", "query", "answer", "question_id"),
        ("img", "prompt", "label", "id"),
        ("file_name", "question", "answers", "request_id"),
    ],
)
def test_column_auto_detection(tmp_path, img, q, ans, rid):
    png(tmp_path / "a.png", RED)
    src = write_jsonl(tmp_path / "d.jsonl", [{img: "a.png", q: "what?", ans: "red", rid: 17}])
    ds = load_vqa_dataset(str(src))
    assert ds.columns["image"] == img and ds.columns["question"] == q
    assert ds.columns["answers"] == ans and ds.columns["request_id"] == rid
    r = ds[0]
    assert (r.prompt, r.answer, r.request_id) == ("what?", ["red"], "17") and pixel(r) == RED


def test_default_name_wins_over_alias(tmp_path):
    png(tmp_path / "a.png")
    src = write_jsonl(
        tmp_path / "d.jsonl",
        [{"image": "a.png", "question": "q", "answers": ["all", "of", "them"], "answer": "one"}],
    )
    assert load_vqa_dataset(str(src))[0].answer == ["all", "of", "them"]


def test_vqav2_style_answer_dicts(tmp_path):
    png(tmp_path / "a.png")
    src = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "image": "a.png",
                "question": "q",
                "answers": [{"answer": "net", "answer_id": 1}, {"answer": "nets", "answer_id": 2}],
            },
            {"image": "a.png", "question": "q", "answers": {"text": ["x", "y"]}},
        ],
    )
    assert [r.answer for r in load_vqa_dataset(str(src))] == [["net", "nets"], ["x", "y"]]


def test_column_map_override(tmp_path):
    png(tmp_path / "a.png", BLUE)
    src = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "pic": "a.png",
                "ask": "which?",
                "refs": ["b"],
                "kind": "color",
                "qid": "Z",
                # decoys under the auto-detected names must be ignored
                "question": "WRONG",
                "answers": ["WRONG"],
                "image": "missing.png",
            }
        ],
    )
    cmap = ColumnMap(
        image="pic", question="ask", answers="refs", task_type="kind", request_id="qid"
    )
    r = load_vqa_dataset(str(src), columns=cmap)[0]
    assert (r.prompt, r.answer, r.task_type, r.request_id) == ("which?", ["b"], "color", "Z")
    assert pixel(r) == BLUE
    with pytest.raises(
        ValueError,
        match=r"ColumnMap.question='nope' is not a column; columns "
        r"are \['pic', 'ask'",
    ):
        load_vqa_dataset(str(src), columns=ColumnMap(question="nope"))


def test_missing_columns_are_named(tmp_path):
    png(tmp_path / "a.png")
    src = write_jsonl(tmp_path / "d.jsonl", [{"picture": "a.png", "question": "q", "answers": "a"}])
    with pytest.raises(
        ValueError,
        match=r"no image column; looked for \['image', 'image_path', "
        r"'img', 'file_name'.*columns are \['picture'",
    ):
        load_vqa_dataset(str(src))
    src = write_jsonl(tmp_path / "e.jsonl", [{"image": "a.png", "question": "q"}])
    with pytest.raises(ValueError, match="no answers column.*require_answers=False"):
        load_vqa_dataset(str(src))
    ds = load_vqa_dataset(str(src), require_answers=False)
    assert ds[0].answer is None and not ds.has_answers
    assert resolve_metric("auto", ds.has_answers)[0] == "agreement"


def test_rows_without_answers_need_require_answers_false(tmp_path):
    rows = three_rows(tmp_path)
    del rows[1]["answers"]
    src = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(ValueError, match=r"row 1 .*column 'answers': missing answers"):
        load_vqa_dataset(str(src))
    ds = load_vqa_dataset(str(src), require_answers=False)
    assert [r.answer for r in ds] == [["red", "Red"], None, ["blue"]] and not ds.has_answers
    rows[1]["answers"] = []  # an explicit empty list is a data bug even then
    write_jsonl(src, rows)
    with pytest.raises(ValueError, match="empty answers list"):
        load_vqa_dataset(str(src), require_answers=False)


# --------------------------------------------------------------------------- bad rows


def _corrupt(tmp_path, rows):
    p = tmp_path / "img" / "b.png"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # truncated PNG


def _truncated_data(tmp_path, rows):
    """Header intact (Image.open succeeds), image data cut: only verify() notices."""
    p = tmp_path / "img" / "b.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
    data = p.read_bytes()
    p.write_bytes(data[:-30])
    with Image.open(p) as im:  # the case is only meaningful if opening still works
        assert im.size == (32, 32)


def _not_an_image(tmp_path, rows):
    (tmp_path / "img" / "b.png").write_text("this is not a png")


BAD_ROWS = {
    # name: (mutation of row 1 / the files, column, expected text)
    "missing_image_file": (
        lambda t, r: r[1].update(image="img/nope.png"),
        "image",
        "image file not found",
    ),
    "corrupt_image": (_corrupt, "image", "unreadable or corrupt image"),
    "truncated_image_data": (_truncated_data, "image", "unreadable or corrupt image"),
    "not_an_image": (_not_an_image, "image", "unreadable or corrupt image"),
    "null_image": (lambda t, r: r[1].update(image=None), "image", "missing image"),
    "empty_answers": (lambda t, r: r[1].update(answers=[]), "answers", "empty answers list"),
    "blank_answer": (
        lambda t, r: r[1].update(answers=["ok", " "]),
        "answers",
        r"answers\[1\]: empty answer string",
    ),
    "non_string_answer": (
        lambda t, r: r[1].update(answers=[["nested"]]),
        "answers",
        r"answers\[0\]: expected a string, got list",
    ),
    "missing_answers": (lambda t, r: r[1].pop("answers"), "answers", "missing answers"),
    "missing_question": (lambda t, r: r[1].pop("question"), "question", "missing question"),
    "empty_question": (lambda t, r: r[1].update(question="  "), "question", "missing question"),
    "non_string_question": (
        lambda t, r: r[1].update(question=3),
        "question",
        "expected a non-empty string, got int",
    ),
    "duplicate_id": (
        lambda t, r: (
            [x.update(request_id=f"id{i}") for i, x in enumerate(r)]
            and r[1].update(request_id="id0")
        ),
        "request_id",
        "duplicate request_id 'id0', already used by row 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_raises_and_is_counted_when_skipped(tmp_path, case):
    mutate, column, expected = BAD_ROWS[case]
    rows = three_rows(tmp_path)
    mutate(tmp_path, rows)
    src = write_jsonl(tmp_path / "d.jsonl", rows)
    rid = "id0" if case == "duplicate_id" else "d-1"
    with pytest.raises(ValueError) as ei:
        load_vqa_dataset(str(src))
    msg = str(ei.value)
    assert f"row 1 (line 2) (request_id '{rid}'), column '{column}': " in msg, msg
    assert __import__("re").search(expected, msg), msg

    ds = load_vqa_dataset(str(src), on_error="skip")
    assert len(ds) == 2 and ds.row_indices == [0, 2]
    assert [row for row, _ in ds.skipped] == [1]
    assert f"column '{column}'" in ds.skipped[0][1]
    summary = ds.summary()
    assert "2 samples" in summary and "1 rows skipped" in summary and "row 1" in summary


def test_invalid_json_line_is_a_bad_row(tmp_path):
    rows = three_rows(tmp_path)
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join([json.dumps(rows[0]), "{not json", json.dumps(rows[2])]) + "\n")
    with pytest.raises(ValueError, match=r"row 1 \(line 2\) \(request_id 'd-1'\): invalid JSON"):
        load_vqa_dataset(str(src))
    assert load_vqa_dataset(str(src), on_error="skip").row_indices == [0, 2]


def test_bad_csv_cells(tmp_path):
    png(tmp_path / "a.png")
    src = write_csv(
        tmp_path / "c.csv",
        ["image", "question", "answers"],
        [
            ["a.png", "q", "[broken"],
            ["a.png", "q", "x||y"],
            ["a.png", "", "x"],
            ["", "q", "x"],
            ["a.png", "q", "fine"],
        ],
    )
    with pytest.raises(
        ValueError,
        match=r"row 0 \(request_id 'c-0'\), column 'answers': answers "
        "cell starts with '\\[' but is not a valid JSON list",
    ):
        load_vqa_dataset(str(src))
    ds = load_vqa_dataset(str(src), on_error="skip")
    assert ds.row_indices == [4]
    reasons = dict(ds.skipped)
    assert "empty answer in '|'-separated" in reasons[1]
    assert "column 'question': missing question" in reasons[2]
    assert "column 'image': missing image" in reasons[3]


def test_all_rows_bad_is_an_error_even_when_skipping(tmp_path):
    rows = three_rows(tmp_path)
    for r in rows:
        r["image"] = "gone.png"
    src = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(ValueError, match="(?s)every examined row was skipped.*3 rows skipped"):
        load_vqa_dataset(str(src), on_error="skip")


def test_bad_hf_image_bytes(tmp_path):
    datasets = pytest.importorskip("datasets")
    good = png_bytes(RED)
    feats = datasets.Features(
        {
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answers": datasets.Value("string"),
        }
    )
    datasets.Dataset.from_dict(
        {
            "image": [{"bytes": good, "path": None}, {"bytes": good[:40], "path": None}],
            "question": ["q", "q"],
            "answers": ["a", "b"],
        },
        features=feats,
    ).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(
        ValueError,
        match=r"row 1 \(request_id 'bad-1'\), column 'image': "
        "unreadable or corrupt image",
    ):
        load_vqa_dataset(str(tmp_path / "bad"))
    ds = load_vqa_dataset(str(tmp_path / "bad"), on_error="skip")
    assert len(ds) == 1 and ds[0].answer == ["a"] and [r for r, _ in ds.skipped] == [1]


def test_images_are_lazy(tmp_path):
    rows = three_rows(tmp_path)
    ds = load_vqa_dataset(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert ds[0].image is not ds[0].image  # decoded afresh on each access, nothing cached
    png(tmp_path / "img" / "b.png", BLUE)  # changed after loading: the new pixels are read
    assert pixel(ds[1]) == BLUE
    (tmp_path / "img" / "c.png").write_bytes(b"gone bad")
    with pytest.raises(
        ValueError,
        match=r"row 2 \(request_id 'd-2'\), column 'image': could not "
        "decode",
    ):
        ds[2]


def test_on_error_and_max_samples_validated(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", three_rows(tmp_path))
    with pytest.raises(ValueError, match="on_error"):
        load_vqa_dataset(str(src), on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_samples"):
        load_vqa_dataset(str(src), max_samples=0)


# --------------------------------------------------------------------------- hub / optional dep


def test_hub_name_offline_gives_a_clear_error(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def offline(name, split=None, **kw):
        calls.append((name, split))
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(HubDatasetError) as ei:
        load_vqa_dataset("lmms-lab/textvqa", split="validation")
    msg = str(ei.value)
    assert calls == [("lmms-lab/textvqa", "validation")]
    assert "treated as a Hugging Face Hub dataset name" in msg
    assert "could not be fetched (no network access" in msg
    assert ".jsonl" in msg and ".csv" in msg and "save_to_disk" in msg and "image folder" in msg
    assert isinstance(ei.value.__cause__, ConnectionError)


def test_hub_error_class_recognised_by_name(monkeypatch):
    datasets = pytest.importorskip("datasets")

    class OfflineModeIsEnabled(Exception):  # huggingface_hub's is not a ConnectionError
        pass

    def offline(name, split=None, **kw):
        raise OfflineModeIsEnabled("HF_HUB_OFFLINE=1")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(HubDatasetError, match="could not be fetched.*OfflineModeIsEnabled"):
        load_vqa_dataset("someone/set")


def test_hub_other_failure_is_not_blamed_on_the_network(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def bad_split(name, split=None, **kw):
        raise ValueError("Unknown split \"tset\". Should be one of ['test'].")

    monkeypatch.setattr(datasets, "load_dataset", bad_split)
    with pytest.raises(HubDatasetError) as ei:
        load_vqa_dataset("someone/set", split="tset")
    msg = str(ei.value)
    assert "treated as a Hugging Face Hub dataset name" in msg and "Unknown split" in msg
    assert "load_dataset failed" in msg and "could not be fetched" not in msg


def test_hub_dataset_loaded_through_load_dataset(monkeypatch):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(train=_hf_dataset(2), test=_hf_dataset(3))

    def fake(name, split=None, **kw):
        return dd if split is None else dd[split]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    with pytest.raises(ValueError, match=r"has splits \['train', 'test'\]"):
        load_vqa_dataset("org/vqa-set")
    ds = load_vqa_dataset("org/vqa-set", split="test")
    assert ds.name == "org/vqa-set" and ds.kind == "hub" and len(ds) == 3
    assert ds.request_ids == ["vqa-set-0", "vqa-set-1", "vqa-set-2"] and pixel(ds[2]) == BLUE


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: pytest.fail("must not reach load_dataset")
    )
    for src in (str(tmp_path / "nope.jsonl"), "data/missing.csv", "./folder"):
        with pytest.raises(FileNotFoundError, match="no such file or directory"):
            load_vqa_dataset(src)


def test_without_datasets_package(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "d.jsonl", three_rows(tmp_path))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    assert len(load_vqa_dataset(str(src))) == 3  # local files need no datasets
    with pytest.raises(ImportError, match="pip install datasets"):
        load_vqa_dataset(str(tmp_path / "hf"))
    with pytest.raises(ImportError, match="treated as a Hugging Face Hub.*pip install datasets"):
        load_vqa_dataset("org/name")


# --------------------------------------------------------------------------- selection


def _many(tmp_path, n=20):
    png(tmp_path / "a.png")
    return write_jsonl(
        tmp_path / "m.jsonl",
        [{"image": "a.png", "question": f"q{i}", "answers": str(i)} for i in range(n)],
    )


def test_max_samples_and_shuffle_are_deterministic(tmp_path):
    src = str(_many(tmp_path))
    assert load_vqa_dataset(src, max_samples=5).row_indices == [0, 1, 2, 3, 4]
    a = load_vqa_dataset(src, shuffle=True, seed=0).row_indices
    assert a == load_vqa_dataset(src, shuffle=True, seed=0).row_indices
    assert a != list(range(20)) and sorted(a) == list(range(20))
    b = load_vqa_dataset(src, shuffle=True, seed=1).row_indices
    assert b != a and sorted(b) == list(range(20))
    c = load_vqa_dataset(src, shuffle=True, seed=0, max_samples=7)
    assert c.row_indices == a[:7]
    # ids follow the source row, not the position after shuffling
    assert c.request_ids == [f"m-{i}" for i in a[:7]]
    assert [r.prompt for r in c] == [f"q{i}" for i in a[:7]]
    assert load_vqa_dataset(src, max_samples=100).row_indices == list(range(20))


def test_skipped_rows_do_not_count_towards_max_samples(tmp_path):
    rows = [json.loads(x) for x in _many(tmp_path, 6).read_text().splitlines()]
    rows[1]["image"] = rows[3]["image"] = "gone.png"
    src = write_jsonl(tmp_path / "m.jsonl", rows)
    ds = load_vqa_dataset(str(src), max_samples=3, on_error="skip")
    assert ds.row_indices == [0, 2, 4] and [r for r, _ in ds.skipped] == [1, 3]
