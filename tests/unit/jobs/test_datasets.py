"""Data set parsing: every real-world quirk of the benchmark files, written here in small."""

from __future__ import annotations

import json

import pytest

from app.training.datasets import MalformedDataset, detect_format, parse_dataset


def rows(n: int, labels: tuple[str, ...] = ("0", "1")) -> list[tuple[str, str]]:
    return [(f"sentence number {i} , with a comma", labels[i % len(labels)]) for i in range(n)]


def test_sst2_train_quirks_label_first_header_and_crlf() -> None:
    body = "label\tsentence\r\n" + "".join(f"{lab}\t{t}\r\n" for t, lab in rows(12))
    parsed = parse_dataset(body.encode(), filename="train.tsv")
    assert (parsed.format, parsed.has_header) == ("tsv", True)
    assert (parsed.text_column, parsed.label_column) == ("sentence", "label")
    assert parsed.inferred == ["text_column", "label_column"]
    assert parsed.examples[0].text == "sentence number 0 , with a comma"  # no stray \r
    assert parsed.label_counts == {"0": 6, "1": 6}


def test_sst2_dev_quirks_text_first_header_and_trailing_space() -> None:
    body = "sentence\tlabel\n" + "".join(f"{t} \t{lab}\n" for t, lab in rows(10))
    parsed = parse_dataset(body.encode(), filename="dev.tsv")
    assert (parsed.text_column, parsed.label_column) == ("sentence", "label")
    assert parsed.label_counts == {"0": 5, "1": 5}


def test_tsv_without_header_infers_columns_by_content_and_keeps_quotes() -> None:
    # AG News (ALPS): `description<TAB>ClassName`, no header, stray double quotes inside.
    body = "".join(
        f'He said "{t}" today\t{("World", "Sports", "Business")[i % 3]}\n'
        for i, (t, _) in enumerate(rows(12))
    )
    parsed = parse_dataset(body.encode(), filename="agnews.tsv")
    assert parsed.has_header is False
    assert parsed.columns == ["column_1", "column_2"]
    assert (parsed.text_column, parsed.label_column) == ("column_1", "column_2")
    assert parsed.examples[0].text.startswith('He said "sentence')
    assert set(parsed.label_counts) == {"World", "Sports", "Business"}


def test_csv_with_quoted_commas_and_numeric_labels() -> None:
    # AG News CSV: `label,content`, quoted fields with commas and backslash line breaks.
    body = "label,content\n" + "".join(
        f'{i % 4 + 1},"Reuters - a, b\\\\c {i}"\n' for i in range(12)
    )
    parsed = parse_dataset(body.encode(), filename="ag.csv")
    assert (parsed.text_column, parsed.label_column) == ("content", "label")
    assert parsed.examples[0].text == "Reuters - a, b\\\\c 0"
    assert parsed.label_counts == {"1": 3, "2": 3, "3": 3, "4": 3}


def test_csv_with_title_and_description_uses_the_description() -> None:
    body = "label,title,description\r\n" + "".join(
        f"{i % 2 + 1},Title {i},Body text number {i}\r\n" for i in range(10)
    )
    parsed = parse_dataset(body.encode(), filename="test_with_titles.csv")
    assert (parsed.text_column, parsed.label_column) == ("description", "label")


def test_banking_header_text_category() -> None:
    body = "text,category\r\n" + "".join(
        f'"Where is my card, {i}?",{("card_arrival", "lost_card")[i % 2]}\r\n' for i in range(10)
    )
    parsed = parse_dataset(body.encode(), filename="train.csv")
    assert (parsed.text_column, parsed.label_column) == ("text", "category")
    assert parsed.examples[0].text == "Where is my card, 0?"


def test_bitext_multiline_quoted_fields_pick_instruction_and_intent() -> None:
    header = "flags,instruction,category,intent,response\n"
    body = header + "".join(
        f"B,cancel order {i},ORDER,{('cancel_order', 'track_order')[i % 2]},"
        f'"Sure.\r\n\r\n1. Go to {{{{Website}}}}, then\r\n2. click ""Cancel"""\n'
        for i in range(10)
    )
    parsed = parse_dataset(body.encode(), filename="bitext.csv")
    assert (parsed.text_column, parsed.label_column) == ("instruction", "intent")
    assert parsed.rows_read == 10
    assert parsed.label_counts == {"cancel_order": 5, "track_order": 5}


def test_jsonl_with_other_key_names_and_int_labels() -> None:
    lines = [
        json.dumps({"id": i, "review": t, "sentiment": i % 2}) for i, (t, _) in enumerate(rows(8))
    ]
    parsed = parse_dataset(("\n".join(lines) + "\n\n").encode(), filename="data.jsonl")
    assert parsed.format == "jsonl"
    assert (parsed.text_column, parsed.label_column) == ("review", "sentiment")
    assert parsed.label_counts == {"0": 4, "1": 4}


def test_columns_named_by_the_caller_by_name_or_position() -> None:
    body = "a,b,c\n" + "".join(f"x{i},long text number {i},{i % 2}\n" for i in range(8))
    parsed = parse_dataset(body.encode(), filename="f.csv", text_column="b", label_column="3")
    assert (parsed.text_column, parsed.label_column) == ("b", "c")
    assert parsed.inferred == []
    assert parsed.has_header  # "b" names a column of the first row


def test_format_is_sniffed_without_an_extension() -> None:
    assert detect_format('{"text": "a", "label": "b"}\n', None) == "jsonl"
    assert detect_format("a\tb\n", "upload") == "tsv"
    assert detect_format("a,b\n", None) == "csv"


def test_problems_report_dropped_rows_rare_labels_and_duplicates() -> None:
    body = "text,label\n" + "".join(f"good text {i},pos\n" for i in range(6))
    body += ",pos\n   ,neg\nkept,\nonly once,rare\ngood text 0,pos\n"
    parsed = parse_dataset(body.encode(), filename="p.csv")
    kinds = {p.kind: p for p in parsed.problems}
    assert kinds["empty_text"].count == 2
    assert kinds["empty_text"].lines == [8, 9]
    assert kinds["empty_label"].lines == [10]
    assert kinds["few_rows_for_label"].count == 1
    assert "rare" in kinds["few_rows_for_label"].message
    assert kinds["duplicate_rows"].count == 1
    assert parsed.rows_read == 11
    assert len(parsed.examples) == 8


@pytest.mark.parametrize(
    ("body", "filename", "line", "words"),
    [
        ("text,label\na,b\nc,d,e\n", "x.csv", 3, "expected 2 fields, found 3"),
        ("text\tlabel\na\tb\nc\n", "x.tsv", 3, "expected 2 fields, found 1"),
        ('{"text": "a", "label": "b"}\n{"text": "c", \n', "x.jsonl", 2, "not valid JSON"),
        ('{"text": "a", "label": "b"}\n["c", "d"]\n', "x.jsonl", 2, "JSON object"),
        ('{"text": "a", "label": ["b"]}\n', "x.jsonl", 1, "holds a list"),
        ('text,label\na,b\n"unterminated,c\n', "x.csv", 3, "not valid CSV"),
        ("just one column\nanother\n", "x.csv", 1, "one column"),
    ],
)
def test_malformed_files_name_the_line(body: str, filename: str, line: int, words: str) -> None:
    with pytest.raises(MalformedDataset, match=words) as err:
        parse_dataset(body.encode(), filename=filename)
    assert err.value.line == line
    assert str(err.value).startswith(f"line {line}:")


def test_non_utf8_bytes_name_the_line() -> None:
    with pytest.raises(MalformedDataset, match="UTF-8") as err:
        parse_dataset(b"text,label\nok,1\nbad \xff\xfe,0\n", filename="x.csv")
    assert err.value.line == 3


@pytest.mark.parametrize(
    ("body", "kwargs", "words"),
    [
        (b"", {}, "empty"),
        (b"\n\n", {}, "empty"),
        (b"text,label\n,a\n", {}, "no usable rows"),
        (b"text,label\na,b\n", {"label_column": "missing"}, "no column 'missing'"),
        (b"text,label\na,b\n", {"text_column": "label", "label_column": "label"}, "same column"),
    ],
)
def test_unusable_files_are_refused(body: bytes, kwargs: dict[str, str], words: str) -> None:
    with pytest.raises(MalformedDataset, match=words):
        parse_dataset(body, filename="x.csv", **kwargs)
