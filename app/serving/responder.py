"""Customer-service replies over a reply model: intent, vetted template, slots, human handoff.

Per message: the reply model runs once on the message (and, when there is an earlier
customer turn, on that turn joined with the message, in the same batch); the sentiment
model runs beside it when one is active. The intent head gives the intent and confidence;
the embedding picks the closest template of that intent from the model's response bank.
Replies therefore only ever come from the bank: a template whose placeholders cannot all be
filled is not sent; the customer is asked for what is missing instead (``missing_slots``).

With a knowledge base named, a message the intents do not cover (the model is unsure, or its
intent matches less well than the best passage) is answered with the best sentence(s) of the
best passage when that passage clears ``kb_min_score``; otherwise the handoff stands.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from tokenizers import Tokenizer

from app.errors import (
    CorruptModel,
    ModelNotFound,
    ModelNotReady,
    SharedStateUnavailable,
    TextserveError,
)
from app.knowledge.service import Caller, KnowledgeBaseService
from app.metrics import Metrics
from app.registry.registry import ModelRegistry
from app.runtime.engine import InferenceEngine
from app.serving.classifier import Classifier, Timings
from app.serving.conversations import Conversations, Turn, conversation_key, is_follow_up
from app.serving.kb_answers import AnswerSource, Citation, KnowledgeAnswers
from app.serving.ranking import ranked
from app.serving.refs import ModelRef
from app.serving.templates import choose
from app.serving.text import is_blank
from app.store.bank import (
    EMBEDDING_OUTPUT,
    INTENT_LOGITS_OUTPUT,
    ResponseBank,
    Template,
    intent_probabilities,
    slot_key,
)

log = logging.getLogger(__name__)

HandoffReason = Literal["customer_asked_for_human", "low_confidence", "negative_sentiment"]
NEGATIVE_LABEL = "negative"
# A follow-up is read in context unless that reading is clearly less sure than alone.
FOLLOW_UP_MARGIN = 0.1
_CACHED_BANKS = 8


@dataclass(frozen=True)
class ReplyPolicy:
    """The thresholds and defaults of the reply service (from settings)."""

    default_model: str = "reply"
    low_confidence: float = 0.5  # hand off below this intent confidence
    context_confidence: float = 0.7  # below this, try the message joined with the last turn
    negative_sentiment: float = 0.9  # hand off when P(negative) reaches this
    sentiment_model: str | None = "sentiment"
    alternatives: int = 3
    default_slots: Mapping[str, str] = field(default_factory=dict)
    kb_min_score: float = 0.45  # least cosine of the best passage to answer from it


@dataclass(frozen=True)
class Scored:
    intent: str
    score: float


@dataclass(frozen=True)
class Sentiment:
    label: str
    score: float
    negative: float  # P(negative), what the handoff rule compares
    model: str  # name@version


@dataclass(frozen=True)
class Reply:
    reply: str  # safe to send: filled template, slot request or handoff message
    template: str  # the bank template it came from, placeholders intact
    intent: str
    confidence: float
    handoff: bool
    handoff_reason: HandoffReason | None
    alternatives: list[Scored]
    sentiment: Sentiment | None
    missing_slots: list[str]
    context_used: bool
    conversation_id: str | None
    model: str
    version: int
    inputs: tuple[str, ...]  # what the model read: the message, and maybe it in context
    timings: Timings
    max_length: int = field(repr=False, compare=False)
    counter: Tokenizer = field(repr=False, compare=False)  # the model's, untruncated
    # The conversation store could not be reached: answered without the kept turns, and
    # this exchange was not kept (the route says so in a header).
    stateless: bool = False
    # "knowledge_base": ``reply`` quotes a passage (``citations``); intent and confidence
    # are still the intent model's best guess.
    answer_source: AnswerSource = "template"
    citations: tuple[Citation, ...] = ()

    def usage(self) -> tuple[int, int]:
        """(prompt, completion) tokens as the model's tokenizer counts them: the inputs as
        far as the model read them, the reply in full. Only the chat API reports them."""
        read = sum(min(len(e.ids), self.max_length) for e in self.counter.encode_batch(self.inputs))
        return read, len(self.counter.encode(self.reply, add_special_tokens=False).ids)


@dataclass(frozen=True)
class _Loaded:
    bank: ResponseBank
    counter: Tokenizer  # untruncated, for usage counts


class Responder:
    """Answers customer messages with a reply model's vetted templates."""

    def __init__(
        self,
        registry: ModelRegistry,
        classifier: Classifier,
        conversations: Conversations,
        metrics: Metrics,
        policy: ReplyPolicy,
        knowledge: KnowledgeBaseService | None = None,
    ) -> None:
        self._knowledge = KnowledgeAnswers(knowledge, policy.kb_min_score)
        self._registry = registry
        self._classifier = classifier
        self.conversations = conversations
        self._predictions = metrics.predictions
        self._handoffs = metrics.handoffs
        self.policy = policy
        self._banks: OrderedDict[str, _Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self._reading: dict[str, asyncio.Future[_Loaded]] = {}

    async def reply(
        self,
        message: str,
        *,
        model: ModelRef | None = None,
        history: Sequence[Turn] | None = None,
        conversation_id: str | None = None,
        owner: str | None = None,
        slots: Mapping[str, str] | None = None,
        knowledge_base: str | None = None,
        caller: Caller | None = None,
        timeout_s: float,
    ) -> Reply:
        """The reply to ``message``. ``history`` (oldest first, without ``message``) wins
        over the server-kept turns of ``conversation_id``; only the latter are updated.

        ``owner`` (the caller's API key name) scopes the conversation: the same id sent with
        another key is another conversation, so no client reads or extends another's.
        ``knowledge_base``: a knowledge base ``caller`` may read, answering what the intents
        do not cover.
        """
        started = time.perf_counter()
        # Only server-kept conversations are read and extended: a client's history wins.
        kept = None
        if conversation_id is not None and history is None:
            kept = conversation_key(owner, conversation_id)
        policy = self.policy
        caller = caller or Caller(owner)
        if knowledge_base is not None:  # an unknown one is refused before any model runs
            await self._knowledge.check(knowledge_base, caller)
        engine = self._engine(model or ModelRef(policy.default_model))
        loaded = await self._load(engine)
        bank = loaded.bank
        stateless = False
        turns: Sequence[Turn] = history or []
        if kept is not None:
            try:
                turns = await self.conversations.read(kept)
            except SharedStateUnavailable:
                # Serving goes on without the context: a reply to the message alone.
                stateless = True
        previous = next((t.content for t in reversed(turns) if t.role == "user"), None)
        texts = [message] if previous is None else [message, f"{previous} {message}"]

        run = engine.infer(texts, timeout_s)
        if policy.sentiment_model:
            result, sentiment = await asyncio.gather(run, self._sentiment(message, timeout_s))
        else:
            result, sentiment = await run, None
        names = engine.output_names
        embeddings = result.outputs[names.index(EMBEDDING_OUTPUT)]
        logits = result.outputs[names.index(INTENT_LOGITS_OUTPUT)]
        probs = intent_probabilities(logits, bank.out_of_scope_logit)
        row = 1 if len(texts) == 2 and self._use_context(message, probs) else 0
        scores: list[float] = probs[row].tolist()
        order = ranked(scores)  # not np.argsort: see app/serving/ranking.py
        intent = bank.intent_names[order[0]]
        confidence = scores[order[0]]
        reason = self._handoff_reason(bank, intent, confidence, sentiment)

        found = None
        if knowledge_base is not None and reason in (None, "low_confidence"):
            found = await self._knowledge.answer(
                knowledge_base, message, caller, confident=reason is None, confidence=confidence
            )
        citations: tuple[Citation, ...] = ()
        missing: list[str] = []
        if found is not None:
            text, citations = found
            template, reason = Template("", ""), None
        else:
            template, text, missing = self._compose(bank, intent, reason, embeddings[row], slots)
        version = str(engine.version)
        self._predictions.labels(engine.name, version, intent).inc()
        if reason is not None:
            self._handoffs.labels(engine.name, version, reason).inc()
        if kept is not None and not stateless:
            said = Turn("user", message, intent=intent, confidence=confidence)
            answered = Turn(
                "assistant",
                text,
                intent=intent,
                confidence=confidence,
                handoff=reason is not None,
                handoff_reason=reason,
            )
            try:
                await self.conversations.add(kept, said, answered)
            except SharedStateUnavailable:
                stateless = True
        return Reply(
            reply=text,
            template=template.text,
            intent=intent,
            confidence=confidence,
            handoff=reason is not None,
            handoff_reason=reason,
            alternatives=[
                Scored(bank.intent_names[i], scores[i]) for i in order[1 : 1 + policy.alternatives]
            ],
            sentiment=sentiment,
            missing_slots=missing,
            context_used=row == 1,
            conversation_id=conversation_id,
            model=engine.name,
            version=engine.version,
            inputs=tuple(texts),
            timings=Timings(
                total_s=time.perf_counter() - started,
                queue_s=result.queue_s,
                tokenize_s=result.tokenize_s,
                inference_s=result.inference_s,
            ),
            max_length=engine.manifest.max_seq_length,
            counter=loaded.counter,
            stateless=stateless,
            answer_source="knowledge_base" if found is not None else "template",
            citations=citations,
        )

    def _compose(
        self,
        bank: ResponseBank,
        intent: str,
        reason: HandoffReason | None,
        embedding: np.ndarray,
        slots: Mapping[str, str] | None,
    ) -> tuple[Template, str, list[str]]:
        """The template and the text to send: from the intent's templates, or from the
        handoff intent's when the model hands off for another reason than being asked."""
        # A blank value fills nothing: the slot stays missing (and is asked for), and a
        # caller's blank does not hide the deployment's own value.
        values = {
            slot_key(k): v
            for src in (self.policy.default_slots, slots or {})
            for k, v in src.items()
            if not is_blank(v)
        }
        if reason is None or reason == "customer_asked_for_human":
            candidates = bank.rows(intent)
        else:
            candidates = bank.handoff_rows()
        if not candidates:  # a bank without a handoff intent: its fallback message
            return Template("", bank.handoff_reply), bank.handoff_reply, []
        return choose(bank, candidates, embedding, values)

    def _use_context(self, message: str, probs: np.ndarray) -> bool:
        """Read the message joined to the previous customer turn (row 1) instead of alone?

        Yes for a short follow-up whose joined reading is confident enough to act on and not
        clearly less sure than the message alone ("and how long will that take?" is
        `delivery_time` alone, but after "I want to return my shoes" it is about the return;
        "this is unacceptable" after "where is my order" stays a complaint); and yes whenever
        the message alone is unsure and the joined reading is surer.
        """
        alone, joined = float(probs[0].max()), float(probs[1].max())
        if (
            is_follow_up(message)
            and joined >= self.policy.low_confidence
            and joined >= alone - FOLLOW_UP_MARGIN
        ):
            return True
        return alone < self.policy.context_confidence and joined > alone

    def _handoff_reason(
        self, bank: ResponseBank, intent: str, confidence: float, sentiment: Sentiment | None
    ) -> HandoffReason | None:
        """An unsure model first (its intent, even a request for a person, is a guess), then
        a customer asking for a person, then an upset customer."""
        if confidence < self.policy.low_confidence:
            return "low_confidence"
        if bank.intents[bank.intent_names.index(intent)].handoff:
            return "customer_asked_for_human"
        if sentiment is not None and sentiment.negative >= self.policy.negative_sentiment:
            return "negative_sentiment"
        return None

    def _engine(self, ref: ModelRef) -> InferenceEngine:
        engine = self._registry.get(ref.name, ref.version)
        if engine.manifest.task != "reply":
            raise ModelNotFound(
                f"model {ref.name!r} is a {engine.manifest.task} model, not a reply model"
            )
        return engine

    async def _sentiment(self, message: str, timeout_s: float) -> Sentiment | None:
        """The sentiment model's view, or None when there is none (or it fails: a reply
        without sentiment beats no reply)."""
        name = self.policy.sentiment_model
        assert name
        try:
            result = await self._classifier.classify(
                ModelRef(name), [message], timeout_s=timeout_s, all_scores=True
            )
        except (ModelNotFound, ModelNotReady):
            return None
        except TextserveError as exc:
            log.warning("sentiment for a reply failed, answering without it: %s", exc)
            return None
        p = result.predictions[0]
        negative = (p.scores or {}).get(NEGATIVE_LABEL, 0.0)
        return Sentiment(p.label, p.score, negative, f"{result.model}@{result.version}")

    async def _load(self, engine: InferenceEngine) -> _Loaded:
        ref = engine.ref
        with self._lock:
            loaded = self._banks.get(ref)
            if loaded is not None:
                self._banks.move_to_end(ref)
                return loaded
            # One read per version, whatever the number of requests waiting for it: a burst
            # on a new version used to start a read per request, and numpy's header parser
            # (ast) is not safe run from several threads at once on Python 3.11 (it failed
            # with "AST constructor recursion depth mismatch" under such a burst).
            reading = self._reading.get(ref)
            if reading is None:
                reading = asyncio.ensure_future(asyncio.to_thread(_read_bank, engine))
                self._reading[ref] = reading
                reading.add_done_callback(functools.partial(self._read_done, ref))
        # Shielded: a request whose client leaves must not cancel the read others wait for.
        return await asyncio.shield(reading)

    def _read_done(self, ref: str, reading: asyncio.Future[_Loaded]) -> None:
        with self._lock:
            self._reading.pop(ref, None)
            if reading.cancelled() or reading.exception() is not None:
                return  # not cached: the next request reads again
            self._banks[ref] = reading.result()
            while len(self._banks) > _CACHED_BANKS:
                self._banks.popitem(last=False)


def _read_bank(engine: InferenceEngine) -> _Loaded:
    bank = ResponseBank.load(engine.folder)
    if bank.intent_names != engine.manifest.labels:
        raise CorruptModel(f"{engine.ref}: response bank intents differ from the model's labels")
    counter = Tokenizer.from_file(str(engine.folder / engine.manifest.tokenizer_file))
    counter.no_truncation()
    counter.no_padding()
    return _Loaded(bank, counter)
