"""The baseline a user would otherwise write: FastAPI + a ``transformers`` pipeline, one request
at a time, on the same fine-tuned model the service serves.

A model version holds ONNX weights, not a PyTorch checkpoint, so the PyTorch model is rebuilt
from them: the base encoder's architecture, with every parameter copied from the ONNX graph's
initializers (linear weights found through the bias each one feeds), loaded strictly (a
parameter left over is an error), and checked against ONNX Runtime's logits before serving.

    python bench/naive_server.py --version-dir models/sentiment/1 --port 8001
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from pydantic import BaseModel


class Body(BaseModel):
    text: str
    task: str | None = None


def _torch_state_from_onnx(onnx_path: Path) -> dict[str, np.ndarray]:
    """Parameter name -> array, from the ONNX initializers of an exported classifier.

    The exporter keeps parameter names for biases, layer norms and embeddings, but stores
    each linear weight transposed under a generated name, as the right operand of a MatMul
    whose output the layer's bias is added to: that Add names the weight.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = {name: array for name, array in inits.items() if not name.startswith("onnx::")}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [i for n in adds for i in n.input if i in inits and i.endswith(".bias")]
        if len(biases) != 1:
            raise SystemExit(f"cannot name the weight of MatMul {node.name}")
        state[biases[0][: -len("bias")] + "weight"] = inits[node.input[1]].T.copy()
    # The exported module wraps the classifier as `model.`; the classifier's own names follow.
    return {k.removeprefix("model."): v for k, v in state.items()}


def load_pipeline(version_dir: Path) -> Any:
    """A ``text-classification`` pipeline equal to the ONNX model of ``version_dir``."""
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer, pipeline

    from app.training.base_model import load_classifier

    manifest = json.loads((version_dir / "manifest.json").read_text())
    labels: list[str] = manifest["labels"]
    model, _ = load_classifier(manifest["base_model"], labels)
    state = {
        k: torch.from_numpy(np.array(v))
        for k, v in _torch_state_from_onnx(version_dir / "model.onnx").items()
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Position ids are a buffer the exporter folds away; every learned parameter must be here.
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"weights do not match: missing {missing}, unexpected {unexpected}")
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(version_dir))
    texts = ["a gorgeous, witty, seductive movie.", "the plot is paper-thin and the acting worse"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch_logits = model(**enc).logits.numpy()
    session = ort.InferenceSession(str(version_dir / "model.onnx"))
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v.numpy() for k, v in enc.items() if k in names}
    onnx_logits = session.run(None, feeds)[0]
    gap = float(np.abs(torch_logits - onnx_logits).max())
    if gap > 1e-3:
        raise SystemExit(f"rebuilt PyTorch model differs from the ONNX one by {gap}")
    # load_classifier is typed as returning a torch Module; the pipeline wants the HF subclass.
    return pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")  # type: ignore[call-overload]


def build_app(version_dir: Path) -> Any:
    from fastapi import FastAPI

    pipe = load_pipeline(version_dir)
    app = FastAPI()

    # A plain `def`, as the FastAPI tutorial writes it: FastAPI runs it on a worker thread.
    @app.post("/classify")
    def classify(body: Body) -> dict[str, Any]:
        result: dict[str, Any] = pipe(body.text)[0]
        return result

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--version-dir", type=Path, required=True)
    p.add_argument("--port", type=int, default=8001)
    args = p.parse_args()
    import uvicorn

    uvicorn.run(
        _echo_request_id(build_app(args.version_dir)),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
    )


def _echo_request_id(app: Any) -> Any:
    """Echo ``X-Request-ID``, which the benchmark's wrk script matches answers by; not part of
    what the naive server does, and a few microseconds against its milliseconds per request."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        rid = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)

        async def send_with_id(message: Any) -> None:
            if rid is not None and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        await app(scope, receive, send_with_id if scope["type"] == "http" else send)

    return wrapped


if __name__ == "__main__":
    main()
