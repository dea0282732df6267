"""/v1/files through the real app: validation at upload and each error answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from app.store.versions import ModelStore
from tests.integration.conftest import run, running
from tests.support.finetune import job_settings, sentiment_csv, upload


def test_upload_reports_columns_counts_and_problems(store: ModelStore, tmp_path: Path) -> None:
    async def main() -> None:
        async with running(job_settings(store, tmp_path / "var")) as (client, _):
            body = b"sentence\tlabel\r\n" + b"".join(
                f"text number {i}\t{i % 2}\r\n".encode() for i in range(10)
            )
            body += b"\t1\r\nrare one\t7\r\n"
            r = await upload(client, body, "dev.tsv")
            assert r.status_code == 201, r.text
            f = r.json()
            assert f["object"] == "file"
            assert f["id"].startswith("file-")
            assert (f["format"], f["has_header"]) == ("tsv", True)
            assert (f["text_column"], f["label_column"]) == ("sentence", "label")
            assert f["inferred_columns"] == ["text_column", "label_column"]
            assert (f["rows"], f["rows_read"], f["rows_dropped"]) == (11, 12, 1)
            assert f["label_counts"] == {"0": 5, "1": 5, "7": 1}
            kinds = {p["kind"]: p for p in f["problems"]}
            assert kinds["empty_text"]["lines"] == [12]
            assert "7" in kinds["few_rows_for_label"]["message"]

            named = await upload(
                client, b"a,b\nfirst text,x\nsecond text,y\n", "n.csv", text_column="a",
                label_column="b",
            )  # fmt: skip
            assert named.status_code == 201
            assert named.json()["inferred_columns"] == []

            assert (await client.get(f"/v1/files/{f['id']}")).json() == f
            listed = (await client.get("/v1/files", params={"limit": 1})).json()
            assert [x["id"] for x in listed["data"]] == [named.json()["id"]]
            assert listed["has_more"] is True
            page2 = (await client.get("/v1/files", params={"after": named.json()["id"]})).json()
            assert [x["id"] for x in page2["data"]] == [f["id"]]

            r = await client.delete(f"/v1/files/{f['id']}")
            assert r.json() == {"id": f["id"], "object": "file", "deleted": True}
            assert (await client.get(f"/v1/files/{f['id']}")).status_code == 404
            assert not (tmp_path / "var" / "files" / f"{f['id']}.jsonl").exists()

    run(main)


def test_each_upload_error_has_its_status(store: ModelStore, tmp_path: Path) -> None:
    settings = job_settings(store, tmp_path / "var", max_upload_bytes=4096)

    async def main() -> None:
        async with running(settings) as (client, _):
            r = await upload(client, b"text,label\nok,1\nbad,row,here\n")
            assert r.status_code == 422
            err = r.json()
            assert err["error"]["type"] == "invalid_dataset"
            assert err["error"]["message"].startswith("line 3:")
            assert err["detail"] == {"line": 3}

            r = await upload(client, b'{"text": "a", "label": "b"}\nnot json\n', "d.jsonl")
            assert r.status_code == 422
            assert r.json()["detail"] == {"line": 2}

            r = await upload(client, b"text,label\nhello,1\n", label_column="nope")
            assert r.status_code == 422
            assert r.json()["error"]["param"] == "label_column"

            r = await upload(client, b"x" * 10_000)
            assert r.status_code == 413
            assert r.json()["error"]["type"] == "payload_too_large"

            # Without a Content-Length (chunked), the limit holds while the body streams.
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(200):
                    yield b"y" * 1024

            r = await client.post(
                "/v1/files",
                content=chunks(),
                headers={"content-type": "multipart/form-data; boundary=zzz"},
            )
            assert r.status_code == 413

            r = await client.post("/v1/files", data={"purpose": "fine-tune"})
            assert r.status_code == 422
            assert r.json()["error"]["param"] == "file"

            r = await client.get("/v1/files/file-nope")
            assert r.status_code == 404
            assert r.json()["error"]["param"] == "file_id"
            r = await client.get("/v1/files", params={"after": "file-nope"})
            assert r.status_code == 404
            assert (r.json()["error"]["type"], r.json()["error"]["param"]) == (
                "file_not_found",
                "after",
            )
            assert (await client.delete("/v1/files/file-nope")).status_code == 404

    run(main)


def test_a_file_in_use_by_an_unfinished_job_cannot_be_deleted(
    store: ModelStore, tmp_path: Path
) -> None:
    # job_worker off: the job stays in `validating_files`, as if another replica had it.
    settings = job_settings(store, tmp_path / "var", job_worker=False)

    async def main() -> None:
        async with running(settings) as (client, _):
            fid = (await upload(client, sentiment_csv(5))).json()["id"]
            r = await client.post("/v1/fine-tunes", json={"model": "mine", "training_file": fid})
            assert r.status_code == 201
            assert r.json()["status"] == "validating_files"
            r = await client.delete(f"/v1/files/{fid}")
            assert r.status_code == 409
            assert r.json()["error"]["type"] == "conflict"
            # A job that has not started is cancelled at once; then the file is free.
            job_id = (await client.get("/v1/fine-tunes")).json()["data"][0]["id"]
            r = await client.post(f"/v1/fine-tunes/{job_id}/cancel")
            assert r.json()["status"] == "cancelled"
            assert r.json()["started_at"] is None
            assert (await client.delete(f"/v1/files/{fid}")).status_code == 200

    run(main)
